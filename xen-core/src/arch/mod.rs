//! Architecture support: boot to long mode, processor tables, entry and exit, paging,
//! interrupts, time and guest-memory access, mirroring the generic folders it serves. Only
//! x86_64 exists; the generic code uses it through this re-export. It sits at the bottom and
//! imports nothing from the generic folders except the boot memory map its page tables are
//! built from.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("xen-core supports x86_64 only");
