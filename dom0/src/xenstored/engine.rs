//! Running operations: every database request goes through here, directly or inside a
//! transaction. The operation runs against a [`View`]; if it succeeds, [`XenStore::admit`]
//! checks the caller's quotas against what it would add; only then is its layer applied to
//! the tree (and its changes turned into watch events) or folded into the transaction. So a
//! refused or failed request leaves no trace, except the reads a transaction must remember.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hypercall_abi::errno::Errno;

use super::conn::Connection;
use super::perms::{Caller, Perms};
use super::transaction::{Transaction, TxId};
use super::tree::{Layer, Node, ReadSet, View};
use super::watch::{self, Change};
use super::wire::{PAYLOAD_MAX, XsType, encode};
use super::{ConnId, XenStore, path};

impl XenStore {
    /// Runs a database operation for `caller`, in transaction `tx` or directly. On success the
    /// changes are committed (and watches fired) or folded into the transaction; on failure
    /// nothing changes.
    pub(super) fn run<T>(
        &mut self,
        conn: ConnId,
        caller: Caller,
        tx: TxId,
        op: impl FnOnce(&mut View<'_>, &mut Vec<Change>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        if tx == TxId::NONE {
            return self.run_direct(caller, op);
        }
        let mut t =
            self.conns.get_mut(&conn).and_then(|c| c.transactions.take(tx)).ok_or(Errno::ENOENT)?;
        let result = self.run_in(caller, &mut t, op);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.transactions.restore(tx, t);
        }
        result
    }

    fn run_in<T>(
        &self,
        caller: Caller,
        t: &mut Transaction,
        op: impl FnOnce(&mut View<'_>, &mut Vec<Change>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut changes = Vec::new();
        let mut view = View::transactional(&self.tree, &t.layer, &t.reads);
        let result = op(&mut view, &mut changes);
        let (layer, reads) = view.into_parts();
        match result {
            Ok(out) => {
                self.admit(&caller, Some(t), &layer, reads.as_ref())?;
                t.absorb(layer, reads, changes);
                Ok(out)
            }
            Err(e) => {
                // A failed request still observed something (say, that a node is missing),
                // so its reads count for conflict detection, as in Xen. If even they do not
                // fit the quotas, the transaction can no longer be checked: doom it.
                let nothing = Layer::default();
                if self.admit(&caller, Some(t), &nothing, reads.as_ref()).is_ok() {
                    t.absorb(nothing, reads, Vec::new());
                } else {
                    t.doomed = true;
                }
                Err(e)
            }
        }
    }

    pub(super) fn run_direct<T>(
        &mut self,
        caller: Caller,
        op: impl FnOnce(&mut View<'_>, &mut Vec<Change>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut changes = Vec::new();
        let mut view = View::direct(&self.tree);
        let out = op(&mut view, &mut changes)?;
        let (layer, _) = view.into_parts();
        self.admit(&caller, None, &layer, None)?;
        if layer.len() > 0 {
            self.tree.apply(layer);
            for change in &changes {
                self.fire(change);
            }
        }
        Ok(out)
    }

    /// Quota checks for an operation's `layer` (on top of transaction `tx`, if any).
    pub(super) fn admit(
        &self,
        caller: &Caller,
        tx: Option<&Transaction>,
        layer: &Layer,
        reads: Option<&ReadSet>,
    ) -> Result<(), Errno> {
        if caller.privileged {
            return Ok(());
        }
        let q = &self.quotas;
        // Node size: only nodes that grew (shrinking an oversized node must stay possible).
        for (p, node) in layer.written() {
            let before = match tx.and_then(|t| t.layer.lookup(p)) {
                Some(state) => state,
                None => self.tree.get(p),
            };
            let size = node.size();
            if size > q.max_node_size && size > before.map_or(0, Node::size) {
                return Err(Errno::ENOSPC);
            }
        }
        // Node counts of every owner that gains nodes.
        let mut delta = BTreeMap::new();
        if let Some(t) = tx {
            self.tree.usage_delta(None, &t.layer, &mut delta);
        }
        self.tree.usage_delta(tx.map(|t| &t.layer), layer, &mut delta);
        for (&owner, d) in &delta {
            let after = self.tree.usage(owner).plus(*d);
            if d.nodes > 0 && owner != self.privileged && after.nodes > q.max_nodes {
                return Err(Errno::ENOSPC);
            }
        }
        // Memory of the caller's domain.
        let held = self.domain_memory(caller.dom);
        let (grows, needed) = match tx {
            None => {
                let d = delta.get(&caller.dom).map_or(0, |d| d.bytes);
                (d > 0, held.saturating_add_signed(d))
            }
            Some(t) => {
                let extra = t.bytes() + layer.bytes() + reads.map_or(0, ReadSet::bytes);
                (true, held + extra)
            }
        };
        if grows && needed > q.max_memory {
            return Err(Errno::ENOMEM);
        }
        if let Some(t) = tx {
            let read = t.reads.len() + reads.map_or(0, ReadSet::len);
            let written = t.layer.len() + layer.len();
            if read.max(written) > q.max_transaction_nodes {
                return Err(Errno::ENOSPC);
            }
        }
        Ok(())
    }

    // ----- watch events --------------------------------------------------------------------

    /// Sends events for a committed change to every connection with a matching watch that may
    /// see it.
    pub(super) fn fire(&mut self, change: &Change) {
        let node = self.tree.get(&change.path);
        let parent = node.and(path::parent(&change.path)).and_then(|p| self.tree.get(p));
        let mut deliveries: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for (&id, c) in &self.conns {
            if c.broken {
                continue;
            }
            let can_read = |perms: &Perms| perms.rights(&c.caller).read;
            let visible = change.perms_before.as_ref().is_some_and(can_read)
                || node.is_some_and(|n| can_read(&n.perms))
                || parent.is_some_and(|n| can_read(&n.perms));
            if !visible {
                continue;
            }
            for w in c.watches().iter().filter(|w| w.matches(change)) {
                deliveries.push((id, watch::event_payload(w.event_path(&change.path), &w.token)));
            }
        }
        for (id, payload) in deliveries {
            self.deliver(id, payload, true);
        }
    }

    /// Sends a special event (`@introduceDomain`, `@releaseDomain`) to the watches on exactly
    /// that name, if the connection may read the special node.
    pub(super) fn fire_special(&mut self, name: &str) {
        let perms = self.tree.get(name).map(|n| n.perms.clone());
        let mut deliveries: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for (&id, c) in &self.conns {
            let visible = perms.as_ref().is_some_and(|p| p.rights(&c.caller).read);
            if c.broken || !visible {
                continue;
            }
            for w in c.watches().iter().filter(|w| w.path == name) {
                deliveries.push((id, watch::event_payload(name, &w.token)));
            }
        }
        for (id, payload) in deliveries {
            self.deliver(id, payload, false);
        }
    }

    /// Queues one WATCH_EVENT, unless it is too long for the protocol or would take the
    /// domain over its memory quota (Xen drops it in both cases; events may be lost), or a
    /// privileged connection over its backlog limit.
    pub(super) fn deliver(&mut self, id: ConnId, payload: Vec<u8>, may_merge: bool) {
        if payload.len() > PAYLOAD_MAX {
            return;
        }
        let msg = encode(XsType::WatchEvent as u32, 0, 0, &payload);
        let Some(c) = self.conns.get(&id) else { return };
        let cost = Connection::message_cost(msg.len());
        let over = if c.caller.privileged {
            c.bytes() + cost > self.quotas.max_privileged_backlog
        } else {
            self.tree.usage(c.caller.dom).bytes + c.bytes() + cost > self.quotas.max_memory
        };
        if over {
            return;
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.queue_event(msg, may_merge);
        }
    }

    pub(super) fn commit(&mut self, caller: Caller, t: Transaction) -> Result<(), Errno> {
        if t.doomed {
            return Err(Errno::ENOSPC);
        }
        let (layer, reads, changes) = t.into_parts();
        if reads.is_stale(&self.tree) {
            return Err(Errno::EAGAIN);
        }
        // The transaction's own checks were made against the tree as it was; re-check the
        // node quotas against the tree as it is now.
        self.admit(&caller, None, &layer, None)?;
        self.tree.apply(layer);
        for change in &changes {
            self.fire(change);
        }
        Ok(())
    }
}
