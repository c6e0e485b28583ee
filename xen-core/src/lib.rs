//! xen-core: the hypervisor, one folder per Xen concept. Interim layout (folders filled in,
//! layering still to come).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
pub mod boot;
pub mod console;
pub mod domain;
pub mod event;
pub mod grant;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod mm;
pub mod sched;
pub mod traps;
