//! The byte-stream ring core shared by the console and XenStore pages: a power-of-two data
//! area plus a consumer and a producer index (free-running u32, masked by `size - 1`), one
//! writer and one reader.
//!
//! Each end keeps its own index privately and re-reads only the peer's, which it validates:
//! `prod - cons > size` is a protocol violation ([`RingError::BadProducer`] for a reader,
//! [`RingError::BadConsumer`] for a writer). These pages have no event index, so the
//! notification rule is Xen's console/XenStore one: tell the peer whenever your index moved.

#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::error::{Notify, RingError, SetupError};
use core::marker::PhantomData;

use crate::memory::{Mem, RingMemory};
use crate::shm::SharedMem;

/// Where one byte ring lives in its page: byte offsets of the data area and of the two index
/// words, and the data size (a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRingLayout {
    /// Offset of the data area.
    pub data: usize,
    /// Size of the data area in bytes: a power of two, at most 2^31.
    pub size: u32,
    /// Offset of the consumer index (u32, written by the reader).
    pub cons: usize,
    /// Offset of the producer index (u32, written by the writer).
    pub prod: usize,
}

impl ByteRingLayout {
    /// Checks the layout against memory of `len` bytes: power-of-two size, aligned index words,
    /// everything in bounds and nothing overlapping.
    pub fn check(&self, len: usize) -> Result<(), SetupError> {
        let size = self.size as usize;
        let data_end = self.data.checked_add(size).ok_or(SetupError::BadLayout)?;
        let disjoint =
            |a: usize, a_len: usize, b: usize, b_len: usize| a + a_len <= b || b + b_len <= a;
        if !self.size.is_power_of_two()
            || self.size > 1 << 31
            || !self.cons.is_multiple_of(4)
            || !self.prod.is_multiple_of(4)
            || !disjoint(self.cons, 4, self.prod, 4)
            || !disjoint(self.data, size, self.cons, 4)
            || !disjoint(self.data, size, self.prod, 4)
        {
            return Err(SetupError::BadLayout);
        }
        let need = data_end.max(self.cons + 4).max(self.prod + 4);
        if need > len {
            return Err(SetupError::TooSmall { len, need });
        }
        Ok(())
    }
}

/// What a byte-ring read or write did: how many bytes moved, and whether to send the peer an
/// event (yes exactly when bytes moved: new data for a reader, or new space for a writer that
/// may be waiting on a full ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a Notify::Yes that is dropped is a lost wake-up"]
pub struct Transfer {
    /// Bytes written or read (a partial transfer is normal: the ring was full or empty).
    pub bytes: usize,
    /// Whether the peer must be notified.
    pub notify: Notify,
}

impl Transfer {
    fn of(bytes: usize) -> Self {
        Transfer { bytes, notify: Notify::from(bytes > 0) }
    }
}

/// One byte ring over shared memory, before it is split into its ends.
#[derive(Debug)]
pub struct ByteRing<'a, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    layout: ByteRingLayout,
    _life: PhantomData<&'a ()>,
}

impl<'a, M: RingMemory> ByteRing<'a, M> {
    /// A byte ring laid out as `layout` in `mem`.
    pub fn new(mem: M, layout: ByteRingLayout) -> Result<Self, SetupError> {
        Self::from_mem(Mem::new(mem), layout)
    }

    /// As [`new`](Self::new), over a ring's handle (one half of a console or XenStore page).
    pub(crate) fn from_mem(mem: Mem<M>, layout: ByteRingLayout) -> Result<Self, SetupError> {
        layout.check(mem.len())?;
        Ok(ByteRing { mem, layout, _life: PhantomData })
    }

    /// Zeroes both indices: a fresh, empty ring (done by whoever builds the page, before the
    /// peer is told about it).
    pub fn reset(&mut self) {
        self.mem.store_u32(self.layout.cons, 0, Relaxed);
        self.mem.store_u32(self.layout.prod, 0, Relaxed);
    }

    /// The writing end, resuming from the producer index currently in the page.
    pub fn writer(self) -> ByteWriter<'a, M> {
        ByteWriter::attach(self.mem, self.layout)
    }

    /// The reading end, resuming from the consumer index currently in the page.
    pub fn reader(self) -> ByteReader<'a, M> {
        ByteReader::attach(self.mem, self.layout)
    }

    /// Both ends, for an in-process ring.
    pub fn split(self) -> (ByteWriter<'a, M>, ByteReader<'a, M>) {
        let r = ByteReader::attach(self.mem.duplicate(), self.layout);
        (ByteWriter::attach(self.mem, self.layout), r)
    }

    pub(crate) fn duplicate(&self) -> ByteRing<'a, M> {
        ByteRing { mem: self.mem.duplicate(), layout: self.layout, _life: PhantomData }
    }
}

/// The writing end of a byte ring. Its producer index is private; the page's copy is only ever
/// written.
#[derive(Debug)]
pub struct ByteWriter<'a, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    layout: ByteRingLayout,
    prod: u32,
    broken: Option<RingError>,
    _life: PhantomData<&'a ()>,
}

impl<M: RingMemory> ByteWriter<'_, M> {
    pub(crate) fn attach(mem: Mem<M>, layout: ByteRingLayout) -> Self {
        // The one time we read our own index from the page: to resume where it stands. A bogus
        // value only makes the next space check fail.
        let prod = mem.load_u32(layout.prod, Relaxed);
        ByteWriter { mem, layout, prod, broken: None, _life: PhantomData }
    }

    /// The error that broke this end, if any.
    pub fn error(&self) -> Option<RingError> {
        self.broken
    }

    /// Free bytes, after validating the reader's consumer index.
    pub fn space(&mut self) -> Result<u32, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        // Acquire (Xen: mb between reading cons and writing data): pairs with the reader's
        // Release store of cons, so its copies out of the bytes we are about to overwrite are
        // complete before our writes.
        let cons = self.mem.load_u32(self.layout.cons, Acquire);
        let used = self.prod.wrapping_sub(cons);
        if used > self.layout.size {
            let e = RingError::BadConsumer { prod: self.prod, cons };
            self.broken = Some(e);
            return Err(e);
        }
        Ok(self.layout.size - used)
    }

    /// Writes as much of `data` as fits and publishes it; returns how much was written.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, RingError> {
        let n = (self.space()? as usize).min(data.len());
        if n == 0 {
            return Ok(Transfer::of(0));
        }
        let size = self.layout.size as usize;
        let pos = (self.prod & (self.layout.size - 1)) as usize;
        let first = n.min(size - pos);
        self.mem.write_bytes(self.layout.data + pos, &data[..first]);
        self.mem.write_bytes(self.layout.data, &data[first..n]);
        self.prod = self.prod.wrapping_add(n as u32);
        // Release (Xen: wmb before updating prod): the reader's Acquire load that sees the new
        // producer also sees the bytes.
        self.mem.store_u32(self.layout.prod, self.prod, Release);
        Ok(Transfer::of(n))
    }
}

/// The reading end of a byte ring. Its consumer index is private; the page's copy is only ever
/// written.
#[derive(Debug)]
pub struct ByteReader<'a, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    layout: ByteRingLayout,
    cons: u32,
    broken: Option<RingError>,
    _life: PhantomData<&'a ()>,
}

impl<M: RingMemory> ByteReader<'_, M> {
    pub(crate) fn attach(mem: Mem<M>, layout: ByteRingLayout) -> Self {
        let cons = mem.load_u32(layout.cons, Relaxed);
        ByteReader { mem, layout, cons, broken: None, _life: PhantomData }
    }

    /// The error that broke this end, if any.
    pub fn error(&self) -> Option<RingError> {
        self.broken
    }

    /// Bytes ready to read, after validating the writer's producer index.
    pub fn available(&mut self) -> Result<u32, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        // Acquire (Xen: rmb between reading prod and reading data): pairs with the writer's
        // Release store of prod, so the bytes below it are visible to our copies.
        let prod = self.mem.load_u32(self.layout.prod, Acquire);
        let avail = prod.wrapping_sub(self.cons);
        if avail > self.layout.size {
            let e = RingError::BadProducer { prod, cons: self.cons };
            self.broken = Some(e);
            return Err(e);
        }
        Ok(avail)
    }

    /// Copies up to `buf.len()` bytes out of the ring (each byte read once) and releases their
    /// space; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, RingError> {
        let n = (self.available()? as usize).min(buf.len());
        if n == 0 {
            return Ok(Transfer::of(0));
        }
        let size = self.layout.size as usize;
        let pos = (self.cons & (self.layout.size - 1)) as usize;
        let first = n.min(size - pos);
        self.mem.read_bytes(self.layout.data + pos, &mut buf[..first]);
        self.mem.read_bytes(self.layout.data, &mut buf[first..n]);
        self.cons = self.cons.wrapping_add(n as u32);
        // Release (Xen: mb before updating cons): our copies are complete before the writer can
        // see the space and overwrite it.
        self.mem.store_u32(self.layout.cons, self.cons, Release);
        Ok(Transfer::of(n))
    }
}
