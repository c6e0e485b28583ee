//! Split-driver formats (`io/` in Xen's public headers): the shared-ring header, the block
//! and network ring entries, the console page and the xenbus device states.
//!
//! Only layouts live here; the ring machinery (indices, barriers, notification checks) is in
//! the `ring-buffers` crate.

pub mod blkif;
pub mod console;
pub mod netif;
pub mod ring;
pub mod xenbus;
