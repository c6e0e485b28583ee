//! The shared-memory accessor: the only module of the crate allowed to use `unsafe`.
//!
//! [`SharedMem`] wraps a raw pointer and a length to memory shared with a peer that may be
//! hostile (another domain, or the hypervisor's view of a guest page). It never hands out a
//! `&`/`&mut` to that memory: every access is an atomic load or store of one naturally aligned
//! word, so the compiler can neither tear, repeat nor elide it, and a peer writing concurrently
//! can change *values* but never cause undefined behaviour on our side. Slot and byte copies go
//! word by word (u64 where the address allows, smaller at the edges) into caller-owned buffers,
//! which is how "copy out once, then use the copy" is enforced: the rest of the crate only ever
//! sees the copies.
//!
//! Word widths are chosen from absolute addresses and never cross the end of the item or byte
//! range being copied, so the two honest ends of a ring never make overlapping accesses of
//! different sizes unless a release/acquire pair on an index orders them, which is what Rust's
//! memory model asks of mixed-size atomics.
//!
//! Trust: offsets come from this crate's own masked indices and layouts, never from the peer, and
//! are still bounds-checked here (a failed check is a bug in this crate and panics; the peer
//! cannot reach it). `SharedMem` is the [`RingMemory`] for real memory; a model checker's
//! memory is another implementation of the same trait (see the crate docs).

#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::mem::{MaybeUninit, size_of};
use core::ptr::NonNull;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::SetupError;
use crate::memory::{Access, RingMemory};

/// Xen's ring page size: always 4 KiB, whatever page size the OS uses.
pub const PAGE_SIZE: usize = 4096;

/// Alignment every `SharedMem` base has (an invariant of both constructors), so that the
/// alignment of an access follows from its offset alone, which the compiler can often prove.
const BASE_ALIGN: usize = 8;

/// One 4 KiB, page-aligned, zero-initialised page for rings that live inside one process
/// (tests, benchmarks, or using the crate between threads). Rings shared with another domain
/// use [`SharedMem::from_raw`] on the mapped page instead.
///
/// The page is made of atomics so that sharing it between the two ends is sound without any
/// `unsafe` on the user's side.
#[repr(C, align(4096))]
pub struct Page {
    _words: [AtomicU32; PAGE_SIZE / 4],
}

static_assertions::const_assert_eq!(core::mem::size_of::<Page>(), PAGE_SIZE);
static_assertions::const_assert_eq!(core::mem::align_of::<Page>(), PAGE_SIZE);

impl Page {
    /// A zeroed page (what a freshly allocated Xen page looks like).
    pub const fn new() -> Self {
        Page { _words: [const { AtomicU32::new(0) }; PAGE_SIZE / 4] }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Page {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Page")
    }
}

/// Shared memory holding one ring (or one console / XenStore page): a base pointer and a length
/// in bytes, accessed only through atomic word accesses.
///
/// Not `Clone`: each ring end owns its handle, and the only ways to get two handles onto the
/// same memory are splitting a ring into its two ends (in-process) or the `unsafe`
/// [`SharedMem::from_raw`], whose caller vouches for the peer.
pub struct SharedMem<'a> {
    /// Aligned to `BASE_ALIGN`.
    base: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [Page]>,
}

// SAFETY: a `SharedMem` is a pointer to memory accessed only through atomic operations (see the
// module doc), which are safe to perform from any thread; the pointed-to memory is either borrowed
// for 'a from `Page`s (which are `Sync`) or vouched for by the caller of `from_raw`.
unsafe impl Send for SharedMem<'_> {}
// SAFETY: as for `Send`: `&SharedMem` only allows atomic accesses.
unsafe impl Sync for SharedMem<'_> {}

impl core::fmt::Debug for SharedMem<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedMem").field("base", &self.base).field("len", &self.len).finish()
    }
}

impl<'a> SharedMem<'a> {
    /// Shared memory over pages owned by this process, borrowed exclusively for `'a`.
    pub fn new(pages: &'a mut [Page]) -> Self {
        let len = pages.len() * PAGE_SIZE;
        SharedMem { base: NonNull::from(pages).cast(), len, _borrow: PhantomData }
    }

    /// Shared memory at `base`, `len` bytes long: a page granted to or mapped from a peer.
    ///
    /// Fails if `base` is not 8-byte aligned (index words are aligned u32s, and slot copies use
    /// aligned 8-byte words; Xen ring pages are page-aligned anyway).
    ///
    /// # Safety
    ///
    /// For the whole lifetime `'a`, the caller guarantees that:
    /// 1. `base..base + len` is mapped readable and writable, does not wrap the address space,
    ///    and `len <= isize::MAX`;
    /// 2. inside this program, the memory is used only through this crate, as the one ring (or
    ///    page layout) it is then given to, with at most one handle per ring end (the peer's
    ///    accesses, from outside this program, may be anything: that is what the crate defends
    ///    against);
    /// 3. the memory is not freed, unmapped or remapped while any handle made from it is alive.
    pub unsafe fn from_raw(base: NonNull<u8>, len: usize) -> Result<Self, SetupError> {
        let addr = base.as_ptr() as usize;
        if !addr.is_multiple_of(BASE_ALIGN) {
            return Err(SetupError::Misaligned { addr, align: BASE_ALIGN });
        }
        Ok(SharedMem { base, len, _borrow: PhantomData })
    }

    /// Length of the memory in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the memory is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `len` bytes of this memory (all of it if `len` is larger): for rings smaller
    /// than a page.
    pub fn shrink_to(self, len: usize) -> Self {
        SharedMem { len: len.min(self.len), ..self }
    }

    #[inline(always)]
    fn check(&self, off: usize, n: usize) {
        // Offsets come from the crate's own layouts and masked indices; this cannot fail unless
        // the crate itself is wrong, and it is what keeps the unsafe blocks below sound.
        // One comparison once the compiler sees that `off + n` cannot overflow (always, for the
        // crate's own offsets).
        let in_bounds = off.checked_add(n).is_some_and(|end| end <= self.len);
        assert!(in_bounds, "shared-memory access out of bounds");
    }

    #[inline(always)]
    fn ptr(&self, off: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(off)
    }

    /// Checks that `count` items of type `T`, `stride` bytes apart from `off`, are in bounds.
    #[inline(always)]
    fn check_run<T>(&self, off: usize, stride: usize, count: usize) {
        // A zero-sized item is no access at all: nothing to keep in bounds.
        if count == 0 || size_of::<T>() == 0 {
            return;
        }
        assert!(size_of::<T>() <= stride, "ring items overlap");
        let span = (count - 1).checked_mul(stride).and_then(|s| s.checked_add(size_of::<T>()));
        self.check(off, span.unwrap_or(usize::MAX));
    }
}

impl RingMemory for SharedMem<'_> {
    fn len(&self) -> usize {
        self.len
    }

    /// A second handle on the same memory, for the other end of an in-process ring.
    fn duplicate(&self, _: Access) -> Self {
        SharedMem { base: self.base, len: self.len, _borrow: PhantomData }
    }

    /// Atomic load of the u32 at byte offset `off` (must be 4-aligned).
    #[inline]
    fn load_u32(&self, _: Access, off: usize, order: Ordering) -> u32 {
        self.check(off, 4);
        // `base` is 8-aligned, so testing `off` tests the address, and for the constant header
        // offsets the compiler drops the test.
        assert!(off.is_multiple_of(4), "misaligned index word");
        let p = self.ptr(off);
        // SAFETY: `p` is in bounds (checked above) of memory valid for reads and writes for 'a
        // (`new`'s borrow or `from_raw`'s contract) and 4-aligned (`base` is 8-aligned and `off`
        // a multiple of 4, asserted); all accesses to this memory from this program are atomic,
        // so no non-atomic access races with this one.
        unsafe { AtomicU32::from_ptr(p.cast()) }.load(order)
    }

    /// Atomic store of `val` to the u32 at byte offset `off` (must be 4-aligned).
    #[inline]
    fn store_u32(&self, _: Access, off: usize, val: u32, order: Ordering) {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "misaligned index word");
        let p = self.ptr(off);
        // SAFETY: as in `load_u32`: in bounds, aligned, valid for writes, atomic-only memory.
        unsafe { AtomicU32::from_ptr(p.cast()) }.store(val, order);
    }

    /// Copies `dst.len()` bytes at `off` out of shared memory, each word read exactly once.
    #[inline]
    fn read_bytes(&self, _: Access, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        // SAFETY: the range `off..off + dst.len()` was bounds-checked just above.
        unsafe { copy_out(self.ptr(off), dst) }
    }

    /// Copies `src` into shared memory at `off`, each word written exactly once.
    #[inline]
    fn write_bytes(&self, _: Access, off: usize, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: the range `off..off + src.len()` was bounds-checked just above.
        unsafe { copy_in(self.ptr(off), src) }
    }

    /// Copies one item out of shared memory: the caller gets a private value the peer can no
    /// longer change (Xen's `RING_COPY_REQUEST`). Each word is loaded exactly once.
    #[inline(always)]
    fn read_item<T: FromBytes + IntoBytes>(&self, _: Access, off: usize) -> T {
        self.check(off, size_of::<T>());
        // SAFETY: the item's range was bounds-checked just above; `base` is 8-aligned, so the
        // item is 8-aligned exactly when `off` is.
        unsafe { load_item(self.ptr(off), off.is_multiple_of(8)) }
    }

    /// Copies one item into shared memory, each word stored exactly once.
    #[inline(always)]
    fn write_item<T: IntoBytes + Immutable>(&self, _: Access, off: usize, val: &T) {
        self.check(off, size_of::<T>());
        // SAFETY: as in `read`: in bounds (checked just above), 8-aligned exactly when `off` is.
        unsafe { store_item(self.ptr(off), val, off.is_multiple_of(8)) }
    }

    // The run copies below take the run's start address once, into a local: the compiler then
    // need not reload `self.base` after every atomic store (it cannot prove that a store into
    // shared memory leaves the ring end's own fields alone), and the per-item work is one
    // address increment and the item's word accesses.

    /// Copies `count` items out of slots `stride` bytes apart, the first at `off`, handing each
    /// copy to `f` in order: one bounds check for the whole run.
    #[inline(always)]
    fn read_each<T: FromBytes + IntoBytes>(
        &self,
        _: Access,
        off: usize,
        stride: usize,
        count: usize,
        mut f: impl FnMut(T),
    ) {
        self.check_run::<T>(off, stride, count);
        let (mut p, aligned) = (self.ptr(off), run_aligned(off, stride));
        for _ in 0..count {
            // SAFETY: item k (the loop's k-th turn) lies at `p = off + k * stride`, inside the
            // run checked above, and is 8-aligned if `aligned` (`base`, `off` and `stride` all
            // are).
            f(unsafe { load_item(p, aligned) });
            p = p.wrapping_add(stride);
        }
    }

    /// Copies items out of slots `stride` bytes apart, the first at `off`, into all of `dst`.
    #[inline(always)]
    fn read_run<T: FromBytes + IntoBytes>(
        &self,
        _: Access,
        off: usize,
        stride: usize,
        dst: &mut [T],
    ) {
        self.check_run::<T>(off, stride, dst.len());
        let (mut p, aligned) = (self.ptr(off), run_aligned(off, stride));
        for item in dst.iter_mut() {
            // SAFETY: as in `read_each`: item k is at `p`, inside the checked run, aligned if
            // `aligned`.
            *item = unsafe { load_item(p, aligned) };
            p = p.wrapping_add(stride);
        }
    }

    /// Copies `src` into slots `stride` bytes apart, the first at `off`.
    #[inline(always)]
    fn write_run<T: IntoBytes + Immutable>(&self, _: Access, off: usize, stride: usize, src: &[T]) {
        self.check_run::<T>(off, stride, src.len());
        let (mut p, aligned) = (self.ptr(off), run_aligned(off, stride));
        for item in src {
            // SAFETY: as in `read_each`: item k is at `p`, inside the checked run, aligned if
            // `aligned`.
            unsafe { store_item(p, item, aligned) };
            p = p.wrapping_add(stride);
        }
    }

    /// Fills up to `count` slots `stride` bytes apart, the first at `off`, with items from
    /// `items` until it runs out; returns how many were written. No item beyond the `count`th is
    /// taken from `items`.
    #[inline(always)]
    fn write_each<T: IntoBytes + Immutable>(
        &self,
        _: Access,
        off: usize,
        stride: usize,
        count: usize,
        items: impl Iterator<Item = T>,
    ) -> usize {
        self.check_run::<T>(off, stride, count);
        let (mut p, aligned) = (self.ptr(off), run_aligned(off, stride));
        // Slot numbers first: `Zip` asks `items` for an item only after it got a slot for it. For
        // an iterator of trusted length (ranges, slices, their maps) `Zip` runs a counted loop,
        // with no per-item check for the end of `items`.
        (0..count).zip(items).fold(0, |_, (k, item)| {
            // SAFETY: as in `read_each`: item k < count is at `p = off + k * stride`, inside the
            // checked run, and aligned if `aligned`.
            unsafe { store_item(p, &item, aligned) };
            p = p.wrapping_add(stride);
            k + 1
        })
    }
}

/// Whether every item of a run starting at offset `off`, `stride` bytes apart, is 8-aligned
/// (`base` is). For ring slots (offset 64 + index * slot size) the compiler usually proves this
/// at compile time.
#[inline(always)]
fn run_aligned(off: usize, stride: usize) -> bool {
    off.is_multiple_of(8) && stride.is_multiple_of(8)
}

/// Loads one `T` from shared memory at `p`, each word exactly once.
///
/// # Safety
///
/// `p..p + size_of::<T>()` must lie inside the range of one `SharedMem` (valid for its
/// lifetime, accessed only atomically), and `p` must be 8-aligned if `aligned8` is true.
#[inline(always)]
unsafe fn load_item<T: FromBytes + IntoBytes>(p: *mut u8, aligned8: bool) -> T {
    let n = size_of::<T>();
    #[cfg(target_has_atomic = "64")]
    if n.is_multiple_of(8) && aligned8 {
        // The common case (slot sizes multiple of 8): a loop with a constant trip count,
        // unrolled into plain 8-byte loads straight into the result.
        let mut val = MaybeUninit::<T>::uninit();
        let dst = val.as_mut_ptr().cast::<u8>();
        for i in 0..n / 8 {
            // SAFETY: `p + 8 * i .. + 8` is inside the caller's range, 8-aligned (`aligned8`),
            // and the memory is valid and accessed only atomically (caller's contract).
            let v = unsafe { AtomicU64::from_ptr(p.wrapping_add(8 * i).cast()) }
                .load(Ordering::Relaxed);
            // SAFETY: `8 * i + 8 <= n`, so the write stays inside `val`; unaligned is fine.
            unsafe { dst.add(8 * i).cast::<u64>().write_unaligned(v) };
        }
        // SAFETY: the loop wrote all `n` bytes of `val`, and `T: FromBytes` makes any
        // initialised bytes a valid `T`.
        return unsafe { val.assume_init() };
    }
    #[cfg(not(target_has_atomic = "64"))]
    let _ = aligned8;
    let mut val = T::new_zeroed();
    if n > 0 {
        // SAFETY: the caller guarantees the range `p..p + n` is in bounds.
        unsafe { copy_out(p, val.as_mut_bytes()) };
    }
    val
}

/// Stores `val` into shared memory at `p`, each word exactly once.
///
/// # Safety
///
/// As for [`load_item`].
#[inline(always)]
unsafe fn store_item<T: IntoBytes + Immutable>(p: *mut u8, val: &T, aligned8: bool) {
    let n = size_of::<T>();
    let src = val.as_bytes();
    #[cfg(target_has_atomic = "64")]
    if n.is_multiple_of(8) && aligned8 {
        for (i, chunk) in src.chunks_exact(8).enumerate() {
            let v = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
            // SAFETY: as in `load_item`: in the caller's range, 8-aligned, atomic-only memory.
            unsafe { AtomicU64::from_ptr(p.wrapping_add(8 * i).cast()) }
                .store(v, Ordering::Relaxed);
        }
        return;
    }
    #[cfg(not(target_has_atomic = "64"))]
    let _ = aligned8;
    if n > 0 {
        // SAFETY: the caller guarantees the range `p..p + n` is in bounds.
        unsafe { copy_in(p, src) };
    }
}

/// The general copy out of shared memory: any length, any alignment. Kept out of line so that
/// the item fast paths above stay small enough to inline.
///
/// # Safety
///
/// `start..start + dst.len()` must lie inside the range of one `SharedMem` (valid for its
/// lifetime, accessed only atomically).
#[inline(never)]
unsafe fn copy_out(start: *mut u8, dst: &mut [u8]) {
    let mut i = 0;
    while i < dst.len() {
        let p = start.wrapping_add(i);
        let width = word_width(p as usize, dst.len() - i);
        // In every arm: `p..p + width` is inside the caller-checked range (`word_width` never
        // exceeds the bytes left), `p` is `width`-aligned (`word_width` picks the width from
        // the address), and the memory is valid and accessed only atomically.
        match width {
            #[cfg(target_has_atomic = "64")]
            8 => {
                // SAFETY: in bounds, 8-aligned, atomic-only memory (see above).
                let v = unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
            }
            4 => {
                // SAFETY: in bounds, 4-aligned, atomic-only memory (see above).
                let v = unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Relaxed);
                dst[i..i + 4].copy_from_slice(&v.to_ne_bytes());
            }
            2 => {
                // SAFETY: in bounds, 2-aligned, atomic-only memory (see above).
                let v = unsafe { AtomicU16::from_ptr(p.cast()) }.load(Ordering::Relaxed);
                dst[i..i + 2].copy_from_slice(&v.to_ne_bytes());
            }
            _ => {
                // SAFETY: in bounds, atomic-only memory (see above).
                dst[i] = unsafe { AtomicU8::from_ptr(p) }.load(Ordering::Relaxed);
            }
        }
        i += width;
    }
}

/// The general copy into shared memory.
///
/// # Safety
///
/// As for [`copy_out`], with `src.len()` bytes.
#[inline(never)]
unsafe fn copy_in(start: *mut u8, src: &[u8]) {
    let mut i = 0;
    while i < src.len() {
        let p = start.wrapping_add(i);
        let width = word_width(p as usize, src.len() - i);
        let b = &src[i..i + width];
        // In every arm: as in `copy_out`.
        match width {
            #[cfg(target_has_atomic = "64")]
            8 => {
                let v = u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
                // SAFETY: in bounds, 8-aligned, atomic-only memory (see above).
                unsafe { AtomicU64::from_ptr(p.cast()) }.store(v, Ordering::Relaxed);
            }
            4 => {
                let v = u32::from_ne_bytes(b.try_into().unwrap_or([0; 4]));
                // SAFETY: in bounds, 4-aligned, atomic-only memory (see above).
                unsafe { AtomicU32::from_ptr(p.cast()) }.store(v, Ordering::Relaxed);
            }
            2 => {
                let v = u16::from_ne_bytes(b.try_into().unwrap_or([0; 2]));
                // SAFETY: in bounds, 2-aligned, atomic-only memory (see above).
                unsafe { AtomicU16::from_ptr(p.cast()) }.store(v, Ordering::Relaxed);
            }
            _ => {
                // SAFETY: in bounds, atomic-only memory (see above).
                unsafe { AtomicU8::from_ptr(p) }.store(b[0], Ordering::Relaxed);
            }
        }
        i += width;
    }
}

/// The widest atomic word (8, 4, 2 or 1 bytes) that is aligned at `addr` and fits in `left`
/// bytes. Both ends of an honest ring pick widths this way from absolute addresses, so a word is
/// never shared between two byte ranges that are owned by different ends at the same time.
#[inline(always)]
fn word_width(addr: usize, left: usize) -> usize {
    #[cfg(target_has_atomic = "64")]
    if addr.is_multiple_of(8) && left >= 8 {
        return 8;
    }
    if addr.is_multiple_of(4) && left >= 4 {
        4
    } else if addr.is_multiple_of(2) && left >= 2 {
        2
    } else {
        1
    }
}
