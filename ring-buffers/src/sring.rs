//! [`SharedRing`]: a typed view of the memory holding one request/response ring (Xen's
//! `*_sring`), which knows the slot size and count, initialises the header
//! (`SHARED_RING_INIT`) and is consumed to make the front and/or back end.
//!
//! It owns the memory handle but keeps no indices: those are private to each end
//! ([`FrontRing`](crate::FrontRing), [`BackRing`](crate::BackRing)), exactly as in Xen, so
//! nothing the peer writes to the page can change what an end believes it has produced or
//! consumed. Making both ends of one ring in one process is `pair`'s.

#![forbid(unsafe_code)]

use core::marker::PhantomData;
use core::sync::atomic::Ordering::Relaxed;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::SetupError;
use crate::layout::{self, PVT, REQ_EVENT, REQ_PROD, RING, RSP_EVENT, RSP_PROD};
use crate::memory::{Mem, RingMemory};
use crate::shm::SharedMem;

/// What a request or response type must be to travel through a ring: plain bytes both ways.
/// `FromBytes` because whatever bytes the peer left in a slot must be a valid value; `IntoBytes`
/// (no padding) so that no uninitialised byte of ours leaks to the peer. Derive the three
/// zerocopy traits on a `#[repr(C)]` struct with explicit padding fields.
pub trait RingItem: FromBytes + IntoBytes + Immutable {}

impl<T: FromBytes + IntoBytes + Immutable> RingItem for T {}

/// The item types and lifetime a ring is generic over, held as a marker: `fn(Req) -> Rsp`
/// keeps a ring `Send`/`Sync` whatever the items are (it holds none of them).
pub(crate) type Items<'a, Req, Rsp> = PhantomData<(fn(Req) -> Rsp, &'a ())>;

/// The shared part of a request/response ring: memory plus the slot geometry for `Req`/`Rsp`.
///
/// ```
/// use ring_buffers::{Page, SharedMem, SharedRing};
/// let mut pages = [Page::new()];
/// let mut ring = SharedRing::<[u8; 112], [u8; 16]>::new(SharedMem::new(&mut pages))?;
/// assert_eq!(ring.size(), 32); // blkif geometry: 112-byte slots, 32 per page
/// ring.init();
/// let (_front, _back) = ring.split();
/// # Ok::<(), ring_buffers::SetupError>(())
/// ```
pub struct SharedRing<'a, Req, Rsp, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    size: u32,
    _items: Items<'a, Req, Rsp>,
}

impl<Req, Rsp, M: RingMemory> core::fmt::Debug for SharedRing<'_, Req, Rsp, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedRing").field("mem", &self.mem).field("size", &self.size).finish()
    }
}

impl<'a, Req: RingItem, Rsp: RingItem, M: RingMemory> SharedRing<'a, Req, Rsp, M> {
    /// Bytes per slot: the size of the C union of `Req` and `Rsp`.
    pub const SLOT_SIZE: usize = {
        let slot = layout::slot_size::<Req, Rsp>();
        assert!(slot > 0, "a ring slot cannot be zero-sized");
        assert!(
            core::mem::align_of::<Req>() <= RING && core::mem::align_of::<Rsp>() <= RING,
            "slot alignment above 64 would move the first slot off offset 64"
        );
        slot
    };

    /// A ring over `mem`, with as many slots as fit (a power of two, like Xen's
    /// `__RING_SIZE`). Reads and writes nothing: call [`init`](Self::init) on the side that
    /// creates the ring, or attach to one the peer initialised.
    pub fn new(mem: M) -> Result<Self, SetupError> {
        let slot = Self::SLOT_SIZE;
        let size = layout::ring_size(mem.len(), slot);
        if size == 0 {
            return Err(SetupError::TooSmall { len: mem.len(), need: RING + slot });
        }
        if size > 1 << 31 {
            return Err(SetupError::TooLarge);
        }
        Ok(SharedRing { mem: Mem::new(mem), size: size as u32, _items: PhantomData })
    }

    /// Number of slots (`RING_SIZE`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// `SHARED_RING_INIT`: producers 0, event indices 1, private and padding bytes zeroed.
    /// Done by the front end before it advertises the ring (grant reference through XenStore),
    /// which is what orders these plain stores before any access by the back end.
    pub fn init(&mut self) {
        self.init_at(0);
    }

    /// As [`init`](Self::init), but with both producers at `index` and both event indices at
    /// `index + 1`: the state of a ring that has already carried `index` requests. Used by tests
    /// to start near `u32::MAX`; pair it with [`split_at`](Self::split_at) or the `attach`
    /// constructors at the same index.
    pub fn init_at(&mut self, index: u32) {
        self.mem.store_u32(REQ_PROD, index, Relaxed);
        self.mem.store_u32(RSP_PROD, index, Relaxed);
        self.mem.store_u32(REQ_EVENT, index.wrapping_add(1), Relaxed);
        self.mem.store_u32(RSP_EVENT, index.wrapping_add(1), Relaxed);
        self.mem.zero(PVT, RING - PVT);
    }

    /// A second handle on the same memory and size (for the other end of an in-process ring).
    pub(crate) fn duplicate(&self) -> Self {
        SharedRing { mem: self.mem.duplicate(), size: self.size, _items: PhantomData }
    }

    pub(crate) fn into_parts(self) -> (Mem<M>, u32) {
        (self.mem, self.size)
    }
}

/// Byte offset of the slot that free-running index `idx` maps to in a ring of `size` slots.
#[inline(always)]
pub(crate) fn slot_offset(idx: u32, size: u32, slot: usize) -> usize {
    RING + (idx & (size - 1)) as usize * slot
}

/// The at most two contiguous runs of slots (slot position, count) that `n` consecutive indices
/// from `idx` occupy in a ring of `size` slots.
#[inline(always)]
pub(crate) fn slot_runs(idx: u32, n: u32, size: u32) -> [(u32, u32); 2] {
    let pos = idx & (size - 1);
    let first = n.min(size - pos);
    [(pos, first), (0, n - first)]
}

/// Copies `src` into the slots of indices `idx..idx + src.len()` (at most two contiguous runs).
#[inline(always)]
pub(crate) fn write_slots<T: RingItem, M: RingMemory>(
    mem: &Mem<M>,
    size: u32,
    slot: usize,
    idx: u32,
    src: &[T],
) {
    let mut done = 0;
    for (pos, len) in slot_runs(idx, src.len() as u32, size) {
        let len = len as usize;
        mem.write_run(slot_offset(pos, size, slot), slot, &src[done..done + len]);
        done += len;
    }
}

/// Copies the slots of indices `idx..idx + dst.len()` into `dst` (at most two contiguous runs).
#[inline(always)]
pub(crate) fn read_slots<T: RingItem, M: RingMemory>(
    mem: &Mem<M>,
    size: u32,
    slot: usize,
    idx: u32,
    dst: &mut [T],
) {
    let mut done = 0;
    for (pos, len) in slot_runs(idx, dst.len() as u32, size) {
        let len = len as usize;
        mem.read_run(slot_offset(pos, size, slot), slot, &mut dst[done..done + len]);
        done += len;
    }
}

/// A consumer index advanced as a run of copies is handed to a callback: counted in a local and
/// added to the index once, when the run ends or while unwinding if the callback panics. So the
/// index has moved past every copy the callback has been given (no copy is delivered twice,
/// even if the callback panics), without a store to the ring end's fields per item.
pub(crate) struct Advance<'r> {
    index: &'r mut u32,
    taken: u32,
}

impl<'r> Advance<'r> {
    #[inline(always)]
    pub(crate) fn new(index: &'r mut u32) -> Self {
        Advance { index, taken: 0 }
    }

    /// Counts one more copy handed out; call before handing it to the callback.
    #[inline(always)]
    pub(crate) fn one(&mut self) {
        self.taken = self.taken.wrapping_add(1);
    }
}

impl Drop for Advance<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        *self.index = self.index.wrapping_add(self.taken);
    }
}
