//! dom0's back ends: its halves of the split devices domUs use. Each is one room holding its
//! connections per domain, serving each within a bounded amount of work per round, and
//! disconnecting a frontend that breaks its ring or floods dom0 with one log line while the
//! others carry on: every guest is a hostile peer. `xenbus` is the back-end half of the
//! xenbus handshake every xenbus back end follows; `console` serves every domU's PV console
//! (and routes serial input to one of them), `vcons` secondary consoles over xenbus, `blk/`
//! virtual block devices over dom0's virtio disks (Xen's blkif). Rings are reached through
//! `crate::ring`.

pub mod blk;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod vcons;
pub mod xenbus;
