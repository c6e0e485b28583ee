//! Frontends: this kernel's halves of split devices, each reaching its back end in another
//! domain through xenbus (`crate::xenbus`), a ring on a page it grants, and an event channel.
//! Today the secondary console (`vcons`); the block and network frontends go here too.

pub mod vcons;
