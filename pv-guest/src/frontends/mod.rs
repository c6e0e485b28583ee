//! Frontends: this kernel's halves of split devices, each reaching its back end in another
//! domain through xenbus (`crate::xenbus`), a ring on a page it grants, and an event channel.
//! The secondary console (`vcons`) and the network device (`net`, with its `smoltcp`
//! device); the block frontend goes here too.

pub mod net;
pub mod vcons;
