//! The console page (`struct xencons_interface`, `io/console.h`): two byte rings in one page,
//! `in` (dom0 to guest, 1024 bytes) and `out` (guest to dom0, 2048 bytes).
//!
//! [`ConsoleGuest`] is the guest's end (writes `out`, reads `in`); [`ConsoleBackend`] is dom0's
//! (writes `in`, reads `out`). Each treats the other as hostile, through the byte-ring core.

#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

use crate::byte_ring::{ByteReader, ByteRing, ByteRingLayout, ByteWriter, Transfer};
use crate::error::{RingError, SetupError};
use crate::memory::{Mem, RingMemory};
use crate::shm::SharedMem;

/// Layout of the console page; only its offsets are used.
#[repr(C)]
#[allow(dead_code)]
pub struct XenconsInterface {
    /// Input to the guest (console keyboard). Written by dom0.
    pub in_: [u8; 1024],
    /// Output from the guest. Written by the guest.
    pub out: [u8; 2048],
    /// Consumer of `in`. Written by the guest.
    pub in_cons: u32,
    /// Producer of `in`. Written by dom0.
    pub in_prod: u32,
    /// Consumer of `out`. Written by dom0.
    pub out_cons: u32,
    /// Producer of `out`. Written by the guest.
    pub out_prod: u32,
}

static_assertions::const_assert_eq!(offset_of!(XenconsInterface, in_), 0);
static_assertions::const_assert_eq!(offset_of!(XenconsInterface, out), 1024);
static_assertions::const_assert_eq!(offset_of!(XenconsInterface, in_cons), 3072);
static_assertions::const_assert_eq!(offset_of!(XenconsInterface, in_prod), 3076);
static_assertions::const_assert_eq!(offset_of!(XenconsInterface, out_cons), 3080);
static_assertions::const_assert_eq!(offset_of!(XenconsInterface, out_prod), 3084);
static_assertions::const_assert_eq!(size_of::<XenconsInterface>(), 3088);

/// The `in` ring: dom0 writes, the guest reads.
pub const CONSOLE_IN: ByteRingLayout = ByteRingLayout {
    data: offset_of!(XenconsInterface, in_),
    size: 1024,
    cons: offset_of!(XenconsInterface, in_cons),
    prod: offset_of!(XenconsInterface, in_prod),
};

/// The `out` ring: the guest writes, dom0 reads.
pub const CONSOLE_OUT: ByteRingLayout = ByteRingLayout {
    data: offset_of!(XenconsInterface, out),
    size: 2048,
    cons: offset_of!(XenconsInterface, out_cons),
    prod: offset_of!(XenconsInterface, out_prod),
};

/// A console page, before it is turned into the guest's or dom0's end.
#[derive(Debug)]
pub struct ConsoleRing<'a, M: RingMemory = SharedMem<'a>> {
    input: ByteRing<'a, M>,
    output: ByteRing<'a, M>,
}

impl<'a, M: RingMemory> ConsoleRing<'a, M> {
    /// The console page in `mem` (at least 3088 bytes; normally the whole 4 KiB page).
    pub fn new(mem: M) -> Result<Self, SetupError> {
        let mem = Mem::new(mem);
        let input = ByteRing::from_mem(mem.duplicate(), CONSOLE_IN)?;
        let output = ByteRing::from_mem(mem, CONSOLE_OUT)?;
        Ok(ConsoleRing { input, output })
    }

    /// Zeroes the four indices (the domain builder does this on a fresh page).
    pub fn reset(&mut self) {
        self.input.reset();
        self.output.reset();
    }

    /// The guest's end: writes `out`, reads `in`.
    pub fn guest(self) -> ConsoleGuest<'a, M> {
        ConsoleGuest { out: self.output.writer(), input: self.input.reader() }
    }

    /// Dom0's end: writes `in`, reads `out`.
    pub fn backend(self) -> ConsoleBackend<'a, M> {
        ConsoleBackend { input: self.input.writer(), out: self.output.reader() }
    }

    /// Both ends, for an in-process console.
    pub fn split(self) -> (ConsoleGuest<'a, M>, ConsoleBackend<'a, M>) {
        let other = ConsoleRing { input: self.input.duplicate(), output: self.output.duplicate() };
        (self.guest(), other.backend())
    }
}

/// The guest's end of the console page.
#[derive(Debug)]
pub struct ConsoleGuest<'a, M: RingMemory = SharedMem<'a>> {
    out: ByteWriter<'a, M>,
    input: ByteReader<'a, M>,
}

impl<M: RingMemory> ConsoleGuest<'_, M> {
    /// Writes console output (`out` ring); partial when the ring is full.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, RingError> {
        self.out.write(data)
    }

    /// Reads console input (`in` ring).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, RingError> {
        self.input.read(buf)
    }

    /// Free bytes in `out`.
    pub fn write_space(&mut self) -> Result<u32, RingError> {
        self.out.space()
    }

    /// Bytes waiting in `in`.
    pub fn read_available(&mut self) -> Result<u32, RingError> {
        self.input.available()
    }
}

/// Dom0's end of the console page.
#[derive(Debug)]
pub struct ConsoleBackend<'a, M: RingMemory = SharedMem<'a>> {
    input: ByteWriter<'a, M>,
    out: ByteReader<'a, M>,
}

impl<M: RingMemory> ConsoleBackend<'_, M> {
    /// Writes console input for the guest (`in` ring); partial when the ring is full.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, RingError> {
        self.input.write(data)
    }

    /// Reads the guest's console output (`out` ring).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, RingError> {
        self.out.read(buf)
    }

    /// Free bytes in `in`.
    pub fn write_space(&mut self) -> Result<u32, RingError> {
        self.input.space()
    }

    /// Bytes waiting in `out`.
    pub fn read_available(&mut self) -> Result<u32, RingError> {
        self.out.available()
    }
}
