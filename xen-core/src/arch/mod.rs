//! Architecture support. Only x86_64 exists; the generic code uses it through this re-export.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("xen-core supports x86_64 only");
