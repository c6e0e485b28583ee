//! [`RingMemory`]: what a ring needs from the memory it lives in. [`SharedMem`](crate::SharedMem)
//! (a mapped page, or pages of this process) is the implementation for real use; a model
//! checker's memory is another one, written by its user (the crate docs show one for loom).
//!
//! The trait's methods take an [`Access`], which only this crate can make: rings call them,
//! other code only implements them. That keeps the crate's guarantee that the two honest ends
//! of a ring never make racing accesses of different sizes, which an outside caller with a
//! second handle could otherwise break.

#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Proof that a [`RingMemory`] method is called by this crate: the type can be named (to
/// implement the trait) but not made outside the crate.
#[derive(Clone, Copy, Debug)]
pub struct Access(());

pub(crate) const ACCESS: Access = Access(());

/// The memory one ring (or one console / XenStore page) lives in, shared with a peer that may
/// be hostile: a byte range the rings read and write only through these methods.
///
/// The crate calls them only with offsets from its own layouts and masked indices, in bounds
/// of [`len`](Self::len), with index words 4-aligned. What it relies on:
///
/// - `load_u32`/`store_u32` are atomic with the ordering given (they carry the producer and
///   consumer indices, Release/Acquire); [`fence`](Self::fence) is a fence of the same memory
///   model (the push-and-check-notify handshakes need `SeqCst` fences);
/// - `read_bytes`/`write_bytes` copy slot and byte contents, each byte read or written once
///   (a value the caller got cannot change afterwards), and never tear an index word;
/// - [`duplicate`](Self::duplicate) gives a second handle on the same bytes, for the other end
///   of a ring split inside one program.
///
/// The `read_*`/`write_*` item methods have default implementations on top of the byte
/// copies; an implementation may override them with faster ones (`SharedMem` does).
pub trait RingMemory: Sized + core::fmt::Debug {
    /// Length in bytes.
    fn len(&self) -> usize;

    /// True if the memory is zero bytes long.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Atomic load of the u32 at byte offset `off` (4-aligned).
    fn load_u32(&self, access: Access, off: usize, order: Ordering) -> u32;

    /// Atomic store of `val` to the u32 at byte offset `off` (4-aligned).
    fn store_u32(&self, access: Access, off: usize, val: u32, order: Ordering);

    /// Copies `dst.len()` bytes at `off` out of the memory.
    fn read_bytes(&self, access: Access, off: usize, dst: &mut [u8]);

    /// Copies `src` into the memory at `off`.
    fn write_bytes(&self, access: Access, off: usize, src: &[u8]);

    /// A memory fence (Xen's `mb()` for `SeqCst`), in the memory model the accesses above
    /// belong to: `core::sync::atomic::fence` unless they are a model checker's.
    fn fence(&self, access: Access, order: Ordering) {
        let _ = access;
        core::sync::atomic::fence(order);
    }

    /// A second handle on the same memory, for the other end of a ring split in-process.
    fn duplicate(&self, access: Access) -> Self;

    /// Zeroes `len` bytes at `off`.
    fn zero(&self, access: Access, off: usize, len: usize) {
        let zeros = [0u8; 64];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len());
            self.write_bytes(access, off + done, &zeros[..n]);
            done += n;
        }
    }

    /// Copies one item out (Xen's `RING_COPY_REQUEST`): a private value the peer can no longer
    /// change.
    fn read_item<T: FromBytes + IntoBytes>(&self, access: Access, off: usize) -> T {
        let mut val = T::new_zeroed();
        self.read_bytes(access, off, val.as_mut_bytes());
        val
    }

    /// Copies one item in.
    fn write_item<T: IntoBytes + Immutable>(&self, access: Access, off: usize, val: &T) {
        self.write_bytes(access, off, val.as_bytes());
    }

    /// Copies `count` items out of slots `stride` bytes apart, the first at `off`, handing
    /// each copy to `f` in order.
    fn read_each<T: FromBytes + IntoBytes>(
        &self,
        access: Access,
        off: usize,
        stride: usize,
        count: usize,
        mut f: impl FnMut(T),
    ) {
        for k in 0..count {
            f(self.read_item(access, off + k * stride));
        }
    }

    /// Copies items out of slots `stride` bytes apart, the first at `off`, into all of `dst`.
    fn read_run<T: FromBytes + IntoBytes>(
        &self,
        access: Access,
        off: usize,
        stride: usize,
        dst: &mut [T],
    ) {
        for (k, item) in dst.iter_mut().enumerate() {
            self.read_bytes(access, off + k * stride, item.as_mut_bytes());
        }
    }

    /// Copies `src` into slots `stride` bytes apart, the first at `off`.
    fn write_run<T: IntoBytes + Immutable>(
        &self,
        access: Access,
        off: usize,
        stride: usize,
        src: &[T],
    ) {
        for (k, item) in src.iter().enumerate() {
            self.write_bytes(access, off + k * stride, item.as_bytes());
        }
    }

    /// Fills up to `count` slots `stride` bytes apart, the first at `off`, from `items` until
    /// it runs out; returns how many were written. Takes no item beyond the `count`th.
    fn write_each<T: IntoBytes + Immutable>(
        &self,
        access: Access,
        off: usize,
        stride: usize,
        count: usize,
        items: impl Iterator<Item = T>,
    ) -> usize {
        // Slot numbers first: `Zip` asks `items` for an item only after it got a slot for it.
        (0..count).zip(items).fold(0, |_, (k, item)| {
            self.write_item(access, off + k * stride, &item);
            k + 1
        })
    }
}

/// A ring's handle on its memory: the trait's methods with the access token filled in, so the
/// ring code reads as plain memory accesses.
#[derive(Debug)]
pub(crate) struct Mem<M>(M);

impl<M: RingMemory> Mem<M> {
    pub(crate) fn new(mem: M) -> Self {
        Mem(mem)
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn duplicate(&self) -> Self {
        Mem(self.0.duplicate(ACCESS))
    }

    #[inline(always)]
    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.0.load_u32(ACCESS, off, order)
    }

    #[inline(always)]
    pub(crate) fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.0.store_u32(ACCESS, off, val, order);
    }

    #[inline(always)]
    pub(crate) fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.0.read_bytes(ACCESS, off, dst);
    }

    #[inline(always)]
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        self.0.write_bytes(ACCESS, off, src);
    }

    #[inline(always)]
    pub(crate) fn fence(&self, order: Ordering) {
        self.0.fence(ACCESS, order);
    }

    pub(crate) fn zero(&self, off: usize, len: usize) {
        self.0.zero(ACCESS, off, len);
    }

    #[inline(always)]
    pub(crate) fn read<T: FromBytes + IntoBytes>(&self, off: usize) -> T {
        self.0.read_item(ACCESS, off)
    }

    #[inline(always)]
    pub(crate) fn write<T: IntoBytes + Immutable>(&self, off: usize, val: &T) {
        self.0.write_item(ACCESS, off, val);
    }

    #[inline(always)]
    pub(crate) fn read_each<T: FromBytes + IntoBytes>(
        &self,
        off: usize,
        stride: usize,
        count: usize,
        f: impl FnMut(T),
    ) {
        self.0.read_each(ACCESS, off, stride, count, f);
    }

    #[inline(always)]
    pub(crate) fn read_run<T: FromBytes + IntoBytes>(
        &self,
        off: usize,
        stride: usize,
        dst: &mut [T],
    ) {
        self.0.read_run(ACCESS, off, stride, dst);
    }

    #[inline(always)]
    pub(crate) fn write_run<T: IntoBytes + Immutable>(&self, off: usize, stride: usize, src: &[T]) {
        self.0.write_run(ACCESS, off, stride, src);
    }

    #[inline(always)]
    pub(crate) fn write_each<T: IntoBytes + Immutable>(
        &self,
        off: usize,
        stride: usize,
        count: usize,
        items: impl Iterator<Item = T>,
    ) -> usize {
        self.0.write_each(ACCESS, off, stride, count, items)
    }
}
