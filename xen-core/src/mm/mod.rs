//! Machine memory management that needs no hardware: the frame table with owners, types and
//! reference counts (`frame`), and the page-table validation rules (`types`). The hypervisor
//! wraps one [`Mm`] in a lock and gives it a [`PageMem`] that reaches frames through its
//! direct map; the tests give it a hash map.

pub mod frame;
pub mod types;

pub use frame::{DomMem, FrameInfo, M2P_INVALID, Mm, PageType, flags};
pub use types::{MapCtx, PageMem};

#[cfg(test)]
mod tests;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod machine;
#[cfg(target_os = "none")]
pub mod memory_op;
#[cfg(target_os = "none")]
pub mod mmu;
