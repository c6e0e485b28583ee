//! What the hypervisor emulates for a PV guest instead of reflecting the fault, as Xen 4.17
//! does: the forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`, #UD), the privileged
//! instructions a PV kernel executes in ring 3 (#GP: rdmsr/wrmsr, mov to and from control and
//! debug registers, clts, wbinvd, cli/sti and port I/O under a virtual IOPL), and, with the
//! `writable_pagetables` assist, its writes to its own read-only L1 page tables (#PF).
//!
//! Hardware-free and host-tested: the decoder (`decode`), the page-table write emulator
//! (`ptwr`) and its flags (`flags`), the privileged-operation rules (`privop`), the MSR
//! policy (`msr`) and the CPUID policy (`cpuid`). On the hardware: carrying them out on the
//! vCPU (this file) and the page-fault path (`fault`). The guest's instruction bytes are
//! copied once; what is not one of the forms the decoder knows is the guest's own fault.

pub mod cpuid;
pub mod decode;
#[cfg(target_os = "none")]
pub mod fault;
pub mod flags;
pub mod msr;
pub mod privop;
pub mod ptwr;

#[cfg(target_os = "none")]
mod hw;

#[cfg(target_os = "none")]
pub use hw::{Emulated, forced_cpuid, load_debug_registers, privileged_op, set_debugreg};
