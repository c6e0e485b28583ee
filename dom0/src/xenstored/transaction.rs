//! Transactions: a private layer of changes, the generations of everything looked at, and the
//! watch changes to report if and when the transaction commits.
//!
//! Xen's rule (tools/xenstored/transaction.c): TRANSACTION_END "T" fails with `EAGAIN` if
//! any node the transaction looked at has been changed by someone else since; otherwise its
//! changes become visible at once and its watch events fire. Every node a transaction modifies
//! was looked at first (to copy it), so "looked at" covers written nodes too. Ids are per
//! connection, never 0 (0 means "no transaction" in the header), and not reused while open.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::tree::{Layer, ReadSet};
use super::watch::Change;

/// A transaction id as it appears in a message header's `tx_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxId(pub u32);

impl TxId {
    /// "Not in a transaction".
    pub const NONE: TxId = TxId(0);
}

/// One open transaction.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    pub layer: Layer,
    pub reads: ReadSet,
    changes: Vec<Change>,
    /// Position of each path's change in `changes`, so a path is reported once.
    change_index: BTreeMap<String, usize>,
    change_bytes: usize,
    /// Set when a request's reads could not be recorded within the quotas: the transaction
    /// can no longer be checked for conflicts, so committing it fails with `ENOSPC`.
    pub doomed: bool,
}

impl Transaction {
    /// Folds one successful operation into the transaction.
    pub fn absorb(&mut self, layer: Layer, reads: Option<ReadSet>, changes: Vec<Change>) {
        self.layer.absorb(layer);
        if let Some(reads) = reads {
            self.reads.absorb(reads);
        }
        for change in changes {
            match self.change_index.get(&change.path) {
                Some(&i) => {
                    if let Some(existing) = self.changes.get_mut(i) {
                        self.change_bytes -= existing.bytes();
                        existing.merge(change);
                        self.change_bytes += existing.bytes();
                    }
                }
                None => {
                    self.change_bytes += change.bytes() + change.path.len();
                    self.change_index.insert(change.path.clone(), self.changes.len());
                    self.changes.push(change);
                }
            }
        }
    }

    /// Memory held (charged to the connection's domain).
    pub fn bytes(&self) -> usize {
        self.layer.bytes() + self.reads.bytes() + self.change_bytes
    }

    /// Splits the transaction for committing.
    pub fn into_parts(self) -> (Layer, ReadSet, Vec<Change>) {
        (self.layer, self.reads, self.changes)
    }
}

/// The open transactions of one connection.
#[derive(Debug)]
pub(crate) struct Transactions {
    open: BTreeMap<TxId, Transaction>,
    next: u32,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions { open: BTreeMap::new(), next: 1 }
    }
}

impl Transactions {
    /// Opens a transaction with a fresh id.
    pub fn start(&mut self) -> TxId {
        // At most a few thousand are ever open, so this finds a free id quickly.
        loop {
            let id = TxId(self.next);
            self.next = self.next.wrapping_add(1);
            if id != TxId::NONE && !self.open.contains_key(&id) {
                self.open.insert(id, Transaction::default());
                return id;
            }
        }
    }

    pub fn contains(&self, id: TxId) -> bool {
        self.open.contains_key(&id)
    }

    /// Takes a transaction out (to run an operation in it or to end it).
    pub fn take(&mut self, id: TxId) -> Option<Transaction> {
        self.open.remove(&id)
    }

    /// Puts a transaction back after an operation.
    pub fn restore(&mut self, id: TxId, tx: Transaction) {
        self.open.insert(id, tx);
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn bytes(&self) -> usize {
        self.open.values().map(Transaction::bytes).sum()
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}
