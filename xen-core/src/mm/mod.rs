//! Machine memory: who owns each frame, what it is used as, and the rules that keep a PV
//! guest, which writes its own page tables, from mapping anything it should not.
//!
//! Hardware-free and host-tested: the frame table with owners, types and reference counts
//! (`frame`) and the page-table validation rules (`types`), over a [`PageMem`] the tests give
//! a hash map. On the hardware: the memory core, the only code besides `arch` allowed
//! `unsafe` (`machine`: the direct map, the one global [`Mm`] behind its lock, frame access
//! by machine frame number; `heap`: the hypervisor's allocator; `scratch`: large temporary
//! buffers of frames mapped contiguously), and the memory hypercalls,
//! which copy each request in once and hand it to the validator (`mmu`: mmu_update,
//! update_va_mapping, mmuext_op; `memory_op`: reservations and the memory maps).
//!
//! Trusted: nothing a guest writes. Page tables are guest memory, read once by value; every
//! frame number, count and pointer in a request is checked or clamped before use.

pub mod descriptor;
pub mod frame;
pub mod quota;
pub mod tlb;
pub mod types;

pub use frame::{DomMem, FrameInfo, M2P_INVALID, Mm, PageType, flags};
pub use tlb::Tlb;
pub use types::{MapCtx, PageMem};

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod heap;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod machine;
#[cfg(target_os = "none")]
pub mod memory_op;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod scratch;

#[cfg(test)]
mod tests;
