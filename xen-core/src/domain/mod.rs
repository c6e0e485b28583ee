//! Domains: what a domain and a vCPU are, and everything that spans a domain's life.
//!
//! From the bottom up: `vcpu` and `table` are data (a vCPU's context and atomics, the domain
//! record and the table of live domains) and import no subsystem, so the scheduler, event
//! channels, grants and memory can all build on them; `build` (a domain from a PV kernel
//! image, through the hardware-free builder, the `pvbuild` crate) and `lifecycle` (shutdown, crash,
//! destruction) sit above those subsystems and call down into each; `domctl` is the
//! toolstack's hypercall. What is re-exported here is the data layer only.
//!
//! Trusted: the memory core (`mm::machine`) for `vcpu_info`; the builder's output is checked by
//! the page-table validator like any guest's tables. A domain's id, name and privilege are
//! fixed when it is created.

#[cfg(target_os = "none")]
pub mod bootdomus;
#[cfg(target_os = "none")]
pub mod build;
#[cfg(target_os = "none")]
pub mod domctl;
#[cfg(target_os = "none")]
mod guest_context;
#[cfg(target_os = "none")]
pub mod lifecycle;
pub mod privregs;
#[cfg(target_os = "none")]
mod table;
#[cfg(target_os = "none")]
mod vcpu;

#[cfg(target_os = "none")]
pub use table::{
    DomState, Domain, all, find, first_from, for_each, get, insert, is_free_id, next_free_id, reap,
    remove, target_domain,
};

pub use privregs::PrivRegs;
#[cfg(target_os = "none")]
pub use vcpu::{
    Callback, GDT_MAX_FRAMES, MAX_POLL_PORTS, PollSet, TrapEntry, VI_CR2, VI_PENDING_SEL, VI_TIME,
    VI_UPCALL_MASK, VI_UPCALL_PENDING, Vcpu, VcpuContext,
};
