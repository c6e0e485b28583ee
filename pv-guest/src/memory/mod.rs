//! The kernel's memory, in three parts by who else may touch it: the heap (`heap`, a fixed
//! arena only this kernel uses), the pages beyond the kernel's image (`pages`: its own pages to
//! grant or use as rings, mapping slots for other frames, and walks of its page tables), and
//! memory shared with the hypervisor or other domains (`shared`: start_info, shared_info,
//! granted and mapped pages, the P2M and M2P tables, ring views), reached only through
//! volatile or atomic accesses.
//!
//! `heap` and `shared` are two of the runtime's `unsafe` modules; `pages` has single marked
//! calls that change this kernel's own mappings.

#[allow(unsafe_code)]
pub mod heap;
pub mod pages;
#[allow(unsafe_code)]
pub mod shared;
