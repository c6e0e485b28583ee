//! Per-connection state: identity, the input assembler, the output queue, watches and open
//! transactions.
//!
//! The output queue holds whole encoded messages; the glue drains it at the ring's pace, in
//! pieces if need be. Replies are always queued (one per request, and requests stop being read
//! once [`super::Quotas::max_outstanding`] replies wait); watch events are queued only within
//! the domain's memory quota, and an event identical to one already waiting is dropped, both as
//! in Xen. So the queue of a domain that never drains its ring stays bounded.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::perms::Caller;
use super::quota::{Quotas, SMALL_OVERHEAD};
use super::transaction::Transactions;
use super::watch::Watch;
use super::wire::MessageAssembler;

#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    is_reply: bool,
    /// Special events are never merged with identical ones (Xen does the same: each
    /// `@releaseDomain` is a separate occurrence).
    may_merge: bool,
}

/// One client of the store.
#[derive(Debug)]
pub(crate) struct Connection {
    pub caller: Caller,
    /// Base of relative paths.
    pub home: String,
    pub assembler: MessageAssembler,
    out: VecDeque<Outgoing>,
    /// Bytes of the front message already taken by the glue.
    head_sent: usize,
    out_bytes: usize,
    /// Replies queued and not yet fully taken.
    outstanding: usize,
    watches: Vec<Watch>,
    watch_bytes: usize,
    pub transactions: Transactions,
    /// Set after a protocol violation: nothing more is read from or sent to this connection.
    pub broken: bool,
    /// Set once `@releaseDomain` fired for a shutdown; cleared by RESUME.
    pub shutdown: bool,
}

impl Connection {
    pub fn new(caller: Caller, home: String) -> Connection {
        Connection {
            caller,
            home,
            assembler: MessageAssembler::new(),
            out: VecDeque::new(),
            head_sent: 0,
            out_bytes: 0,
            outstanding: 0,
            watches: Vec::new(),
            watch_bytes: 0,
            transactions: Transactions::default(),
            broken: false,
            shutdown: false,
        }
    }

    /// Memory this connection holds, besides the nodes its domain owns.
    pub fn bytes(&self) -> usize {
        self.out_bytes + self.watch_bytes + self.transactions.bytes() + self.assembler.buffered()
    }

    /// True while the glue must not read more requests: an unprivileged connection has as
    /// many unread replies as its quota allows.
    pub fn is_stalled(&self, quotas: &Quotas) -> bool {
        !self.caller.privileged && self.outstanding >= quotas.max_outstanding
    }

    pub fn queue_reply(&mut self, bytes: Vec<u8>) {
        self.outstanding += 1;
        self.push(Outgoing { bytes, is_reply: true, may_merge: false });
    }

    /// Queues an event unless an identical one is already waiting. Returns false if dropped.
    pub fn queue_event(&mut self, bytes: Vec<u8>, may_merge: bool) -> bool {
        if may_merge && self.out.iter().any(|o| o.may_merge && o.bytes == bytes) {
            return false;
        }
        self.push(Outgoing { bytes, is_reply: false, may_merge });
        true
    }

    /// Cost of queuing a message of `len` bytes.
    pub fn message_cost(len: usize) -> usize {
        len + SMALL_OVERHEAD
    }

    fn push(&mut self, o: Outgoing) {
        self.out_bytes += Self::message_cost(o.bytes.len());
        self.out.push_back(o);
    }

    /// The unsent rest of the front message (empty if nothing is queued).
    pub fn output(&self) -> &[u8] {
        self.out.front().and_then(|o| o.bytes.get(self.head_sent..)).unwrap_or_default()
    }

    /// Marks `n` bytes of [`Self::output`] as sent (clamped to what is there).
    pub fn consume(&mut self, n: usize) {
        let Some(front) = self.out.front() else { return };
        self.head_sent = (self.head_sent + n).min(front.bytes.len());
        if self.head_sent == front.bytes.len() {
            self.pop_front();
        }
    }

    /// Takes the whole front message (or the unsent rest of it).
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let sent = self.head_sent;
        let mut o = self.pop_front()?;
        if sent > 0 {
            o.drain(..sent.min(o.len()));
        }
        Some(o)
    }

    fn pop_front(&mut self) -> Option<Vec<u8>> {
        let o = self.out.pop_front()?;
        self.head_sent = 0;
        self.out_bytes = self.out_bytes.saturating_sub(Self::message_cost(o.bytes.len()));
        if o.is_reply {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        Some(o.bytes)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    pub fn add_watch(&mut self, w: Watch) {
        self.watch_bytes += w.bytes();
        self.watches.push(w);
    }

    /// Removes the watch on `path` with `token`; false if there is none.
    pub fn remove_watch(&mut self, path: &str, token: &[u8]) -> bool {
        let Some(i) = self.watches.iter().position(|w| w.path == path && w.token == token) else {
            return false;
        };
        let w = self.watches.remove(i);
        self.watch_bytes = self.watch_bytes.saturating_sub(w.bytes());
        true
    }

    /// Drops watches and transactions (RESET_WATCHES, re-INTRODUCE, protocol violation).
    pub fn reset_watches_and_transactions(&mut self) {
        self.watches.clear();
        self.watch_bytes = 0;
        self.transactions.clear();
    }

    /// Drops everything queued or half-read too (re-INTRODUCE, protocol violation).
    pub fn reset(&mut self) {
        self.reset_watches_and_transactions();
        self.assembler = MessageAssembler::new();
        self.out.clear();
        self.head_sent = 0;
        self.out_bytes = 0;
        self.outstanding = 0;
    }
}
