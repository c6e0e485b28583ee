//! The shared-memory accessor as seen by loom (`RUSTFLAGS="--cfg loom"`): same interface as
//! `shm.rs`, but the memory is an array of loom `AtomicU32` words, so loom sees (and permutes)
//! every index access, every slot copy and every fence.
//!
//! Memory is modelled word by word. Reads of part of a word load the whole word once; writes of
//! part of a word clear and then set only the bytes being written (two read-modify-writes that
//! leave the neighbouring bytes, which may belong to the other end, untouched). That differs
//! from the real accessor's byte-wide accesses but gives loom the same happens-before questions
//! to answer, which is what the models check.

#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use loom::sync::atomic::AtomicU32;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Xen's ring page size.
pub const PAGE_SIZE: usize = 4096;

/// Shared memory for a loom model: `len` bytes of loom atomics, created inside `loom::model`.
pub struct SharedMem<'a> {
    words: Arc<[AtomicU32]>,
    len: usize,
    _borrow: PhantomData<&'a ()>,
}

impl core::fmt::Debug for SharedMem<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedMem").field("len", &self.len).finish()
    }
}

impl SharedMem<'static> {
    /// Zeroed model memory of `len` bytes (rounded up to whole words).
    pub fn new_loom(len: usize) -> Self {
        let words: Vec<AtomicU32> = (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect();
        SharedMem { words: words.into(), len, _borrow: PhantomData }
    }
}

impl<'a> SharedMem<'a> {
    /// Length of the memory in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the memory is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `len` bytes of this memory.
    pub fn shrink_to(self, len: usize) -> Self {
        SharedMem { len: len.min(self.len), ..self }
    }

    pub(crate) fn duplicate(&self) -> SharedMem<'a> {
        SharedMem { words: self.words.clone(), len: self.len, _borrow: PhantomData }
    }

    /// A handle that plays the hostile peer in loom models.
    pub fn peer_view(&self) -> PeerView<'a> {
        PeerView { mem: self.duplicate() }
    }

    fn check(&self, off: usize, n: usize) {
        assert!(off <= self.len && n <= self.len - off, "shared-memory access out of bounds");
    }

    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "misaligned index word");
        self.words[off / 4].load(mutated(order))
    }

    pub(crate) fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "misaligned index word");
        self.words[off / 4].store(val, mutated(order));
    }

    pub(crate) fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        let mut i = 0;
        while i < dst.len() {
            let addr = off + i;
            let (w, b) = (addr / 4, addr % 4);
            let n = (4 - b).min(dst.len() - i);
            let bytes = self.words[w].load(Ordering::Relaxed).to_ne_bytes();
            dst[i..i + n].copy_from_slice(&bytes[b..b + n]);
            i += n;
        }
    }

    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        let mut i = 0;
        while i < src.len() {
            let addr = off + i;
            let (w, b) = (addr / 4, addr % 4);
            let n = (4 - b).min(src.len() - i);
            if n == 4 {
                let v = u32::from_ne_bytes(src[i..i + 4].try_into().unwrap_or([0; 4]));
                self.words[w].store(v, Ordering::Relaxed);
            } else {
                let mut mask = [0u8; 4];
                let mut bits = [0u8; 4];
                mask[b..b + n].fill(0xff);
                bits[b..b + n].copy_from_slice(&src[i..i + n]);
                let (mask, bits) = (u32::from_ne_bytes(mask), u32::from_ne_bytes(bits));
                self.words[w].fetch_and(!mask, Ordering::Relaxed);
                self.words[w].fetch_or(bits, Ordering::Relaxed);
            }
            i += n;
        }
    }

    pub(crate) fn zero(&self, off: usize, len: usize) {
        let zeros = vec![0u8; len];
        self.write_bytes(off, &zeros);
    }

    pub(crate) fn read<T: FromBytes + IntoBytes>(&self, off: usize) -> T {
        let mut val = T::new_zeroed();
        self.read_bytes(off, val.as_mut_bytes());
        val
    }

    pub(crate) fn write<T: IntoBytes + Immutable>(&self, off: usize, val: &T) {
        self.write_bytes(off, val.as_bytes());
    }

    pub(crate) fn read_each<T: FromBytes + IntoBytes>(
        &self,
        off: usize,
        stride: usize,
        count: usize,
        mut f: impl FnMut(T),
    ) {
        for k in 0..count {
            f(self.read(off + k * stride));
        }
    }

    pub(crate) fn write_each<T: IntoBytes + Immutable>(
        &self,
        off: usize,
        stride: usize,
        count: usize,
        items: impl Iterator<Item = T>,
    ) -> usize {
        // As in `shm.rs`: slot numbers first, so no item beyond the `count`th is taken.
        (0..count).zip(items).fold(0, |_, (k, item)| {
            self.write(off + k * stride, &item);
            k + 1
        })
    }

    pub(crate) fn read_run<T: FromBytes + IntoBytes>(
        &self,
        off: usize,
        stride: usize,
        dst: &mut [T],
    ) {
        for (k, item) in dst.iter_mut().enumerate() {
            self.read_bytes(off + k * stride, item.as_mut_bytes());
        }
    }

    pub(crate) fn write_run<T: IntoBytes + Immutable>(&self, off: usize, stride: usize, src: &[T]) {
        for (k, item) in src.iter().enumerate() {
            self.write_bytes(off + k * stride, item.as_bytes());
        }
    }
}

pub(crate) fn fence(order: Ordering) {
    if order == Ordering::SeqCst && SKIP_FULL_FENCES.with(|s| s.get()) {
        return;
    }
    loom::sync::atomic::fence(order);
}

/// The ordering an index access really gets: as asked, unless a mutation weakens it.
fn mutated(order: Ordering) -> Ordering {
    if RELAX_INDEX_ORDERING.with(|s| s.get()) { Ordering::Relaxed } else { order }
}

std::thread_local! {
    static SKIP_FULL_FENCES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static RELAX_INDEX_ORDERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Fault injection for the loom suite, to show that the models can fail. The switches are
/// per OS thread (loom runs a model's threads on the thread that calls `loom::model`), so
/// tests running in parallel do not see each other's mutations.
pub mod loom_mutation {
    /// Drop every `fence(SeqCst)` (Xen's `mb()`): the push-and-check-notify / final-check
    /// handshake then loses wake-ups.
    pub fn skip_full_fences(skip: bool) {
        super::SKIP_FULL_FENCES.with(|s| s.set(skip));
    }

    /// Turn the Release stores and Acquire loads of ring indices into Relaxed ones (Xen's
    /// `wmb`/`rmb`): a consumer can then see an index before the slot contents behind it.
    pub fn relax_index_ordering(relax: bool) {
        super::RELAX_INDEX_ORDERING.with(|s| s.set(relax));
    }
}

/// Raw access to model memory for a thread playing a hostile peer.
pub struct PeerView<'a> {
    mem: SharedMem<'a>,
}

impl PeerView<'_> {
    /// Reads the u32 at `off`.
    pub fn load_u32(&self, off: usize) -> u32 {
        self.mem.load_u32(off, Ordering::Relaxed)
    }
    /// Writes the u32 at `off` (relaxed: a hostile peer promises no ordering at all).
    pub fn store_u32(&self, off: usize, val: u32) {
        self.mem.store_u32(off, val, Ordering::Relaxed);
    }
    /// Writes bytes at `off`.
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        self.mem.write_bytes(off, src);
    }
    /// Reads bytes at `off`.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.mem.read_bytes(off, dst);
    }
}
