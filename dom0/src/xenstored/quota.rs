//! Resource limits for unprivileged domains, and the byte costs we charge them with.
//!
//! xenstored runs in dom0 and every domU can make it allocate (nodes, watches, transactions,
//! queued replies). These quotas are what keeps a hostile domU from exhausting dom0's memory:
//! every allocation a domU can cause is either counted against one of them or bounded by the
//! protocol (one message of at most 4 KiB in flight per connection). The privileged domain is
//! exempt, as in Xen's C xenstored (`domain_quota_val_exceeds` ignores the privileged domid).
//!
//! Defaults are Xen's (`tools/xenstored/domain.c`). One deliberate difference: Xen compares
//! `value >= quota`, which makes e.g. the node limit 999; we read a quota as "at most this many".

/// Per-domain limits. Each applies to every unprivileged domain separately (the last one to
/// privileged connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a domain may own (Xen "nodes", 1000). Exceeding: `ENOSPC`.
    pub max_nodes: usize,
    /// Watches a connection may hold (Xen "watches", 128). Exceeding: `ENOSPC`.
    pub max_watches: usize,
    /// Concurrently open transactions (Xen "transactions", 10). Exceeding: `ENOSPC`.
    pub max_transactions: usize,
    /// Nodes one transaction may touch, read or written (Xen "transaction-nodes", 1024).
    /// Exceeding: `ENOSPC`.
    pub max_transaction_nodes: usize,
    /// Size of one node as written by a domU: value + child names + 4 bytes per permission
    /// entry (Xen "node-size", 2048). Exceeding: `ENOSPC`.
    pub max_node_size: usize,
    /// Length of a path below `/local/domain/<id>/`, or of the whole path elsewhere (Xen
    /// "path-max", `XENSTORE_REL_PATH_MAX`). Exceeding: `EINVAL`, as Xen.
    pub max_path_len: usize,
    /// Permission entries per node (Xen "node-permissions", 5). Exceeding: `ENOSPC`.
    pub max_perms: usize,
    /// Replies queued and not yet taken by the glue (Xen "outstanding", 20). When reached we
    /// stop reading the domain's ring ([`super::XenStore::input_wanted`] returns 0): the
    /// guest's own ring fills up and it waits, exactly as with Xen.
    pub max_outstanding: usize,
    /// Bytes of xenstored memory charged to a domain: nodes it owns, its watches, its open
    /// transactions and its queued output (Xen "memory", 2.5 MiB). A write that would exceed it
    /// fails with `ENOMEM`; a watch event that would exceed it is dropped, as in Xen.
    pub max_memory: usize,
    /// Bytes of output that may wait on a *privileged* connection before further watch events
    /// to it are dropped. Not in Xen, which trusts dom0 to keep up; here a stuck dom0
    /// component must not let guests, whose writes fire its watches, grow dom0's memory
    /// without bound. Replies are never dropped (dom0 only gets as many as it asks for).
    pub max_privileged_backlog: usize,
}

impl Quotas {
    /// Xen's C xenstored defaults (and our privileged backlog, which Xen does not have).
    pub const XEN_DEFAULTS: Quotas = Quotas {
        max_nodes: 1000,
        max_watches: 128,
        max_transactions: 10,
        max_transaction_nodes: 1024,
        max_node_size: 2048,
        max_path_len: super::wire::REL_PATH_MAX,
        max_perms: 5,
        max_outstanding: 20,
        max_memory: 2 * 1024 * 1024 + 512 * 1024,
        max_privileged_backlog: 4 * 1024 * 1024,
    };
}

impl Default for Quotas {
    fn default() -> Self {
        Self::XEN_DEFAULTS
    }
}

/// What one owner's committed nodes cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Number of nodes whose first permission entry names this domain.
    pub nodes: usize,
    /// Sum of [`node_cost`] over those nodes.
    pub bytes: usize,
}

/// A signed change to a [`Usage`], as an operation or a transaction would cause it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageDelta {
    pub nodes: isize,
    pub bytes: isize,
}

impl Usage {
    /// This usage after `delta`, saturating at zero (a delta never removes more than exists,
    /// but saturating keeps a bookkeeping slip from wrapping into a huge number).
    pub fn plus(self, delta: UsageDelta) -> Usage {
        Usage {
            nodes: self.nodes.saturating_add_signed(delta.nodes),
            bytes: self.bytes.saturating_add_signed(delta.bytes),
        }
    }
}

/// Fixed per-node overhead we charge on top of its payload bytes: allocator headers, the map
/// entry, the `Node` struct. An estimate; it only has to be the right order of magnitude so
/// that many tiny nodes cannot be free.
pub(crate) const NODE_OVERHEAD: usize = 96;

/// Bytes charged for a permission entry (Xen stores 4: domid + perm byte + padding).
pub(crate) const PERM_ENTRY_BYTES: usize = 4;

/// Fixed overhead charged per watch and per queued message.
pub(crate) const SMALL_OVERHEAD: usize = 48;

/// What a committed node at `path` with payload `node_size` costs its owner.
pub(crate) fn node_cost(path: &str, node_size: usize) -> usize {
    path.len() + node_size + NODE_OVERHEAD
}
