//! blkback: virtual block devices for domUs over dom0's virtio disks, speaking Xen's blkif
//! protocol (`io/blkif.h`) so that any blkfront (ours, Linux's `xen-blkfront`) can use them.
//!
//! - `vbd` (host-tested): the `disk=` entry of a guest's configuration, and where the vbd
//!   lies on its disk;
//! - `request` (host-tested): the checks every request's copy passes;
//! - `conn`: one connected ring and the serving of its requests within a round's budget;
//! - `backend`: the room: every domU's vbds, their xenbus nodes and handshake.
//!
//! What it offers the frontend (its XenStore nodes): `sectors`, `info`, `sector-size`,
//! `feature-flush-cache` and `feature-barrier` (both honoured: flush, write, flush),
//! `feature-discard` (discarded sectors read back as zeros), `feature-max-indirect-segments`
//! (64), `max-ring-page-order` (2: rings of up to four pages). Data moves by grant copy, not
//! by mapping the guest's pages.

pub mod request;
pub mod vbd;

#[cfg(target_os = "none")]
mod backend;
#[cfg(target_os = "none")]
mod conn;

#[cfg(target_os = "none")]
pub use backend::BlkBackend;
