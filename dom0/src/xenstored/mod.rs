//! xenstored: the XenStore daemon dom0 runs, as a hardware-free state machine.
//!
//! [`XenStore`] owns the node tree, the connections (one per introduced domain, plus any
//! number of in-process ones for dom0's own components), their watches and transactions. It
//! never touches shared memory or event channels: the glue reads request bytes from a
//! domain's ring and [`feeds`](XenStore::feed) them in, writes what [`output`](XenStore::output)
//! holds to the response ring, notifies the domain, and carries out the [`Action`]s that
//! INTRODUCE and RELEASE produce. Everything a domain sends is treated as hostile: no byte
//! sequence makes this code panic, and quotas ([`Quotas`]) bound the memory any unprivileged
//! domain can make it hold.
//!
//! The protocol is Xen's (docs/misc/xenstore.txt, io/xs_wire.h), implemented from the
//! specification and the observable behaviour of Xen's C xenstored; see the sub-modules for
//! the rules each one follows.
//!
//! The folder holds both halves: the engine (every file but two, hardware-free and unit-tested
//! on the host under `tests/`), and its glue to the machine, built for dom0's kernel only:
//! `server` (the domains' rings and dom0's own connection, served each round) and `local`
//! (dom0's in-process client, for xenbus code in its back ends).

mod conn;
mod dispatch;
mod engine;
#[cfg(target_os = "none")]
pub mod local;
mod ops;
mod path;
mod perms;
mod quota;
#[cfg(target_os = "none")]
pub mod server;
mod transaction;
mod tree;
mod watch;
pub mod wire;

#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::{DomId, EvtchnPort, Mfn};

use conn::Connection;
use tree::{INTRODUCE_DOMAIN, RELEASE_DOMAIN, Tree};
use wire::PAYLOAD_MAX;

pub use perms::{Access, PermEntry, Perms};
pub use quota::Quotas;
pub use transaction::TxId;
pub use wire::{Message, MessageAssembler, ProtocolError, XsType, XsdSockmsg};

use perms::Caller;

/// Identifies a client connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnId {
    /// The ring connection of an introduced domain.
    Domain(DomId),
    /// An in-process client inside dom0 (toolstack, backends). Acts as the privileged domain.
    Local(u32),
}

/// Something the glue must do on the store's behalf, drained with [`XenStore::take_actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// INTRODUCE: map the domain's XenStore page (`mfn`, or grant ref 1, which the domain
    /// builder fills with the same frame), bind `port` with `bind_interdomain`, then feed the
    /// ring to [`XenStore::feed`]. If the domain was already introduced this is a
    /// re-introduction: rebind the event channel and reset the ring indexes; the store has
    /// already dropped the connection's watches, transactions and queued output.
    Introduce { dom: DomId, mfn: Mfn, port: EvtchnPort },
    /// RELEASE: unbind the event channel and unmap the page. The store has forgotten the
    /// domain (as after [`XenStore::domain_died`]).
    Release { dom: DomId },
}

/// The XenStore daemon's state.
#[derive(Debug)]
pub struct XenStore {
    quotas: Quotas,
    privileged: DomId,
    tree: Tree,
    conns: BTreeMap<ConnId, Connection>,
    actions: VecDeque<Action>,
    next_local: u32,
}

impl XenStore {
    /// A store with the initial tree (`/`, `/tool/xenstored`, `/local/domain`, and the special
    /// nodes), dom0 as the privileged domain, and no connections.
    pub fn new(quotas: Quotas) -> Self {
        let privileged = DomId::DOM0;
        XenStore {
            quotas,
            privileged,
            tree: Tree::new(privileged),
            conns: BTreeMap::new(),
            actions: VecDeque::new(),
            next_local: 0,
        }
    }

    fn caller_for(&self, dom: DomId) -> Caller {
        Caller { dom, target: None, privileged: dom == self.privileged }
    }

    fn system(&self) -> Caller {
        self.caller_for(self.privileged)
    }

    // ----- connections -------------------------------------------------------------------

    /// Opens an in-process connection for a dom0 component. It is privileged, and relative
    /// paths resolve against `/local/domain/0`.
    pub fn open_local(&mut self) -> ConnId {
        let mut id = ConnId::Local(self.next_local);
        while self.conns.contains_key(&id) {
            self.next_local = self.next_local.wrapping_add(1);
            id = ConnId::Local(self.next_local);
        }
        self.next_local = self.next_local.wrapping_add(1);
        let conn = Connection::new(self.system(), path::home_path(self.privileged));
        self.conns.insert(id, conn);
        id
    }

    /// Closes an in-process connection, dropping its watches, transactions and output. Does
    /// nothing for a domain's connection: use [`Self::domain_died`] for those.
    pub fn close_local(&mut self, conn: ConnId) {
        if let ConnId::Local(_) = conn {
            self.conns.remove(&conn);
        }
    }

    /// Introduces a domain without an INTRODUCE message (for domains dom0 itself builds and
    /// wires up). Fires `@introduceDomain` the first time. Returns `EINVAL` for the privileged
    /// domain and for reserved ids.
    pub fn introduce_domain(&mut self, dom: DomId) -> Result<(), Errno> {
        if dom == self.privileged || !dom.is_ordinary() {
            return Err(Errno::EINVAL);
        }
        self.introduce(dom);
        Ok(())
    }

    fn introduce(&mut self, dom: DomId) {
        let id = ConnId::Domain(dom);
        if let Some(c) = self.conns.get_mut(&id) {
            c.reset();
            c.broken = false;
            return;
        }
        let conn = Connection::new(self.caller_for(dom), path::home_path(dom));
        self.conns.insert(id, conn);
        self.fire_special(INTRODUCE_DOMAIN);
    }

    /// True if `dom` has a connection (INTRODUCE seen, no RELEASE or death since). The
    /// privileged domain always counts as introduced.
    pub fn is_introduced(&self, dom: DomId) -> bool {
        dom == self.privileged || self.conns.contains_key(&ConnId::Domain(dom))
    }

    /// The domain has shut down (but is not yet destroyed): fires `@releaseDomain` once, until
    /// RESUME re-arms it. Xen reports shutdowns this way so toolstacks notice crashes.
    pub fn domain_shutdown(&mut self, dom: DomId) {
        let Some(c) = self.conns.get_mut(&ConnId::Domain(dom)) else { return };
        if !c.shutdown {
            c.shutdown = true;
            self.fire_special(RELEASE_DOMAIN);
        }
    }

    /// The domain is gone: drops its connection, watches and transactions, removes every
    /// node it owns (with their subtrees; watchers are told), removes it from every other
    /// node's permissions so a later domain with the same id inherits nothing, and fires
    /// `@releaseDomain` if it had been introduced. The glue calls this when the hypervisor
    /// reports the domain destroyed; RELEASE does the same.
    pub fn domain_died(&mut self, dom: DomId) {
        if dom == self.privileged {
            return;
        }
        let was_introduced = self.conns.remove(&ConnId::Domain(dom)).is_some();
        for c in self.conns.values_mut() {
            if c.caller.target == Some(dom) {
                c.caller.target = None;
            }
        }
        for root in self.tree.owned_roots(dom) {
            // A root may have gone with an earlier root's subtree; RM of a missing node is
            // then a harmless no-op.
            let system = self.system();
            let _ = self.run_direct(system, |v, ch| ops::rm(v, &system, &root, ch));
        }
        self.tree.strip_grants(dom);
        if was_introduced {
            self.fire_special(RELEASE_DOMAIN);
        }
    }

    // ----- toolstack helpers ---------------------------------------------------------------

    /// Creates a domain's home `/local/domain/<id>` the way Xen's toolstack (libxl) lays it
    /// out: the home and `device`, `control`, `cpu`, `memory` owned by dom0 and readable by the
    /// domain; `data`, `drivers`, `feature`, `attr`, `error` and `control/shutdown`,
    /// `control/feature-{poweroff,reboot,suspend}`, `control/sysrq` owned by the domain (so
    /// they count against its quota and disappear with it); plus `name` and `domid`. Replaces
    /// an existing home. Atomic, and fires watches like any write.
    pub fn create_domain_home(&mut self, dom: DomId, name: &str) -> Result<(), Errno> {
        if !dom.is_ordinary() {
            return Err(Errno::EINVAL);
        }
        let system = self.system();
        let home = path::home_path(dom);
        let read_only = Perms::new(self.privileged, Access::None).with(dom, Access::Read);
        let owned = Perms::new(dom, Access::None);
        // A name from the toolstack still has to be a legal value: at most one payload.
        if name.len() > PAYLOAD_MAX {
            return Err(Errno::E2BIG);
        }
        self.run_direct(system, |v, ch| {
            ops::rm(v, &system, &home, ch)?;
            for (sub, perms) in [
                ("", &read_only),
                ("/device", &read_only),
                ("/control", &read_only),
                ("/cpu", &read_only),
                ("/memory", &read_only),
                ("/control/shutdown", &owned),
                ("/control/feature-poweroff", &owned),
                ("/control/feature-reboot", &owned),
                ("/control/feature-suspend", &owned),
                ("/control/sysrq", &owned),
                ("/data", &owned),
                ("/drivers", &owned),
                ("/feature", &owned),
                ("/attr", &owned),
                ("/error", &owned),
            ] {
                let p = format!("{home}{sub}");
                ops::mkdir(v, &system, &p, ch)?;
                ops::set_perms(v, &system, &p, perms.clone(), ch)?;
            }
            ops::write(v, &system, &format!("{home}/name"), name.as_bytes(), ch)?;
            ops::write(v, &system, &format!("{home}/domid"), format!("{}", dom.0).as_bytes(), ch)
        })
    }

    /// Removes `/local/domain/<id>` (what the toolstack does when it destroys a domain).
    pub fn remove_domain_home(&mut self, dom: DomId) -> Result<(), Errno> {
        let system = self.system();
        let home = path::home_path(dom);
        self.run_direct(system, |v, ch| ops::rm(v, &system, &home, ch))
    }

    /// Writes a node as the privileged domain (creating parents; fires watches).
    pub fn write_privileged(&mut self, abs_path: &str, value: &[u8]) -> Result<(), Errno> {
        let system = self.system();
        let p = path::canonicalize(abs_path.as_bytes(), "/", false, None)?;
        self.run_direct(system, |v, ch| ops::write(v, &system, &p.abs, value, ch))
    }

    /// Removes a node and everything below it as the privileged domain (fires watches).
    pub fn remove_privileged(&mut self, abs_path: &str) -> Result<(), Errno> {
        let system = self.system();
        let p = path::canonicalize(abs_path.as_bytes(), "/", false, None)?;
        self.run_direct(system, |v, ch| ops::rm(v, &system, &p.abs, ch))
    }

    /// Reads a node as the privileged domain.
    pub fn read_privileged(&mut self, abs_path: &str) -> Result<Vec<u8>, Errno> {
        let system = self.system();
        let p = path::canonicalize(abs_path.as_bytes(), "/", false, None)?;
        self.run_direct(system, |v, _| ops::read(v, &system, &p.abs))
    }

    /// Sets a node's permissions as the privileged domain (fires watches).
    pub fn set_perms_privileged(&mut self, abs_path: &str, perms: Perms) -> Result<(), Errno> {
        let system = self.system();
        let p = path::canonicalize(abs_path.as_bytes(), "/", true, None)?;
        self.run_direct(system, |v, ch| ops::set_perms(v, &system, &p.abs, perms, ch))
    }

    // ----- byte stream in, messages out ---------------------------------------------------

    /// How many bytes the glue may read from the connection's request ring now: the rest of
    /// the current message, or 0 while the connection has too many unread replies (the guest
    /// then waits on its full ring, as with Xen) or is shut down after a protocol violation.
    pub fn input_wanted(&self, conn: ConnId) -> usize {
        match self.conns.get(&conn) {
            Some(c) if !c.broken && !c.is_stalled(&self.quotas) => c.assembler.wanted(),
            _ => 0,
        }
    }

    /// Feeds bytes read from the connection's request ring and processes every message they
    /// complete. Returns how many bytes were taken; the rest must stay in the ring (this only
    /// happens when the connection stalls, see [`Self::input_wanted`]).
    ///
    /// On a framing violation the connection is shut down (watches, transactions and output
    /// dropped, nothing more read or sent) and the error returned; the glue should stop
    /// serving the ring and may set its `error` field to `XENSTORE_ERROR_PROTO`.
    pub fn feed(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, ProtocolError> {
        let mut used = 0;
        while used < bytes.len() {
            let Some(c) = self.conns.get_mut(&conn) else {
                return Err(ProtocolError::NotConnected);
            };
            if c.broken {
                return Err(ProtocolError::NotConnected);
            }
            if c.is_stalled(&self.quotas) {
                break;
            }
            match c.assembler.push(&bytes[used..]) {
                Ok((n, msg)) => {
                    used += n;
                    if let Some(m) = msg {
                        self.process(conn, m.header, &m.payload);
                    }
                }
                Err(e) => {
                    c.reset();
                    c.broken = true;
                    return Err(e);
                }
            }
        }
        Ok(used)
    }

    /// The unsent part of the connection's next outgoing message (empty if none). Write what
    /// fits into the response ring, then call [`Self::consume_output`].
    pub fn output(&self, conn: ConnId) -> &[u8] {
        self.conns.get(&conn).map(Connection::output).unwrap_or_default()
    }

    /// Marks `n` bytes of [`Self::output`] as written to the ring.
    pub fn consume_output(&mut self, conn: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.consume(n);
        }
    }

    /// Takes the next whole outgoing message (header + payload), for in-process clients.
    pub fn pop_output(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        self.conns.get_mut(&conn)?.pop()
    }

    /// Connections with queued output (to notify after a batch of work).
    pub fn connections_with_output(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().filter(|(_, c)| c.has_output()).map(|(id, _)| *id)
    }

    /// Takes the pending [`Action`]s, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// Bytes the store holds in total (nodes, watches, transactions, queues), as charged.
    pub fn memory_usage(&self) -> usize {
        self.tree.total_bytes() + self.conns.values().map(Connection::bytes).sum::<usize>()
    }

    /// Bytes charged to one domain: the nodes it owns plus its connection's state.
    pub fn domain_memory(&self, dom: DomId) -> usize {
        let conn = self.conns.get(&ConnId::Domain(dom)).map_or(0, Connection::bytes);
        self.tree.usage(dom).bytes + conn
    }
}
