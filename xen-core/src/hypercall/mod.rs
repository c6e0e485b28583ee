//! Hypercalls: the one table that lists every hypercall with its handler and who may make it,
//! and dispatch from it (`table`); what every handler is given (`context`, re-exported here);
//! and the few hypercalls that belong to no single concept: `multicall` (a batch of other
//! hypercalls, run through the table), `xen_version` and `sysctl` (machine-wide facts for
//! dom0's toolstack). Every other handler lives in the folder of the concept it serves.
//!
//! Trusted: nothing a guest passes. Arguments are claims: pointers are copied through once,
//! counts are clamped, and a privileged hypercall is refused to an unprivileged domain by the
//! table itself.

mod context;
pub mod multicall;
pub mod sysctl;
pub mod table;
pub mod version;

pub use context::{Hc, HcResult, copy_in, copy_out, restart};
