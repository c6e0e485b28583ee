//! Frontends: this kernel's halves of split devices, each reaching its back end in another
//! domain through xenbus (`crate::xenbus`), a ring on pages it grants, and an event channel:
//! the secondary console (`vcons`), the block device (`blk`, Xen's blkif) and the network
//! device (`net`, Xen's netif, with its `smoltcp` device).

pub mod blk;
pub mod net;
pub mod vcons;
