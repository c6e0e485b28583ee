//! Unit and property tests (host only). Each file owns one concern:
//! `layout` the wire geometry, `reqrsp` the honest request/response protocol, `bytes` the byte
//! rings, `hostile` a peer that breaks the rules, `props` random interleavings, `threads` real
//! concurrency.

mod bytes;
mod hostile;
mod layout;
mod props;
mod reqrsp;
mod threads;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use core::sync::atomic::Ordering::SeqCst;

use crate::memory::{ACCESS, Mem, RingMemory};
use crate::{BackRing, FrontRing, Page, SharedMem, SharedRing};

/// Raw access to ring memory for a test playing a peer that ignores the protocol. Used
/// sequentially (between calls of the honest end), or concurrently only with accesses of the
/// same width as the honest end's, so that the tests stay inside Rust's memory model.
pub(crate) struct PeerView<'a> {
    mem: Mem<SharedMem<'a>>,
}

impl<'a> SharedMem<'a> {
    /// A second handle on this memory, for the test's hostile peer.
    pub(crate) fn peer_view(&self) -> PeerView<'a> {
        PeerView { mem: Mem::new(self.duplicate(ACCESS)) }
    }
}

impl PeerView<'_> {
    pub(crate) fn load_u32(&self, off: usize) -> u32 {
        self.mem.load_u32(off, SeqCst)
    }
    pub(crate) fn store_u32(&self, off: usize, val: u32) {
        self.mem.store_u32(off, val, SeqCst);
    }
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        self.mem.write_bytes(off, src);
    }
    pub(crate) fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.mem.read_bytes(off, dst);
    }
}

/// blkif request: 112 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct BlkReq {
    pub op: u8,
    pub nr_segments: u8,
    pub handle: u16,
    pub _pad: u32,
    pub id: u64,
    pub sector: u64,
    pub seg: [BlkSeg; 11],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct BlkSeg {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
    pub _pad: u16,
}

/// blkif response: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct BlkRsp {
    pub id: u64,
    pub op: u8,
    pub _pad: u8,
    pub status: i16,
    pub _pad2: u32,
}

/// netif tx request (12 bytes) and response (4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct NetTxReq {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct NetTxRsp {
    pub id: u16,
    pub status: i16,
}

/// netif rx request and response (8 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct NetRxReq {
    pub id: u16,
    pub _pad: u16,
    pub gref: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub(crate) struct NetRxRsp {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

/// A ring of `slots` slots (a power of two) of u64 requests and u32 responses, both ends at
/// `start`, over the start of `pages`.
pub(crate) fn small_ring(
    pages: &mut [Page],
    slots: usize,
    start: u32,
) -> (FrontRing<'_, u64, u32>, BackRing<'_, u64, u32>, PeerView<'_>) {
    let mem = SharedMem::new(pages).shrink_to(64 + 8 * slots);
    let evil = mem.peer_view();
    let mut ring = SharedRing::<u64, u32>::new(mem).unwrap();
    assert_eq!(ring.size() as usize, slots);
    ring.init_at(start);
    let (f, b) = ring.split_at(start);
    (f, b, evil)
}

/// Proptest case count: full on the host, a handful under Miri (which is ~1000x slower).
pub(crate) fn cases(host: u32) -> u32 {
    if cfg!(miri) { 3 } else { host }
}
