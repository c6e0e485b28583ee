//! The bare-metal hypervisor: everything that touches the hardware or runs guests. Only
//! `arch` and `mem` may use `unsafe`; the logic they serve lives in the `xen_core` library.

#[allow(unsafe_code)]
pub mod arch;
pub mod build;
pub mod clock;
pub mod domain;
pub mod emulate;
pub mod events;
pub mod grants;
pub mod hypercall;
pub mod logging;
#[allow(unsafe_code)]
pub mod mem;
pub mod sched;
pub mod setup;
pub mod timers;
pub mod traps;
