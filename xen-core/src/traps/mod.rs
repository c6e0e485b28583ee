//! Traps: every way from a guest into the hypervisor and back.
//!
//! Hardware-free and host-tested: the bounce frames written on a guest's kernel stack and the
//! `iret` frame read back (`bounce`). On the hardware: the entry points from the IDT and
//! `syscall` (`entry`), reflecting exceptions and events to the guest's handlers (`deliver`),
//! emulating the few privileged instructions the PV ABI expects (`emulate`), faults in the
//! hypervisor itself (`fatal`), the way back to a guest (`exit`: expired timers, the
//! scheduling decision, upcall delivery, above the scheduler and event channels), and the
//! hypercalls that register handlers and return from them (`callbacks`: set_trap_table,
//! set_callbacks, callback_op, stack_switch, set_segment_base, fpu_taskswitch, vm_assist,
//! iret), set the I/O privilege level emulation honours (`physdev_op`), and give the guest
//! its descriptor table (`gdt`: set_gdt, update_descriptor).
//!
//! Trusted: nothing on a guest's stack or in its trap table; every guest address is checked
//! before it becomes a rip or rsp, and a guest that cannot take a frame is crashed alone.

pub mod bounce;
#[cfg(target_os = "none")]
pub mod callbacks;
#[cfg(target_os = "none")]
pub mod deliver;
pub mod emulate;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod fatal;
#[cfg(target_os = "none")]
pub mod gdt;
#[cfg(target_os = "none")]
pub mod physdev_op;
