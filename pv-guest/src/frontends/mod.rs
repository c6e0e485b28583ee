//! Frontends: this kernel's halves of split devices, each reaching its back end in another
//! domain through xenbus (`crate::xenbus`), a ring on pages it grants, and an event channel:
//! the secondary console (`vcons`) and the block device (`blk`, Xen's blkif); the network
//! frontend goes here too.

pub mod blk;
pub mod vcons;
