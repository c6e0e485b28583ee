//! Event channels (the 2-level ABI): how a domain is notified.
//!
//! Hardware-free and host-tested: the port bookkeeping of one domain (`ports`: which ports
//! exist, what each is bound to, which vCPU it notifies), with the operations that involve two
//! tables as functions over both. On the hardware: raising an event in the shared_info
//! bitmaps and waking whoever should hear it (`pending`, re-exported here: what the rest of
//! the hypervisor calls, e.g. to raise a VIRQ), operations that reach a peer domain's table
//! under the two-table lock order (`interdomain`), and the `event_channel_op` hypercall.
//! Physical IRQs: which domain owns each GSI and which port it raises (`pirq`, host-tested),
//! and the same on the hardware, with the IOAPIC pins masked and unmasked (`irq`).
//!
//! Events sit above the scheduler: raising one calls down into it to wake a vCPU, and the
//! scheduler never calls back. The upcall itself is delivered on the way back to the guest
//! (`traps::exit`). Trusted: nothing a guest passes; port numbers are checked against the
//! owner's table, and the shared bitmaps are touched only atomically.

#[cfg(target_os = "none")]
pub mod event_channel_op;
#[cfg(target_os = "none")]
pub mod interdomain;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
mod pending;
pub mod pirq;
pub mod ports;

#[cfg(target_os = "none")]
pub use pending::{is_pending, send_virq, set_pending, unmask, upcall_due};
