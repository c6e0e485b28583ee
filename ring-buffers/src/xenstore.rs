//! The XenStore page (`struct xenstore_domain_interface`, `io/xs_wire.h`): a request ring
//! (guest to xenstored) and a response ring (xenstored to guest), 1024 bytes each, plus the
//! control words `server_features`, `connection`, `error` and `evtchn_port`.
//!
//! [`XenstoreGuest`] is the guest's end (writes `req`, reads `rsp`); [`XenstoreServer`] is
//! xenstored's (reads `req`, writes `rsp`). Message framing (`xsd_sockmsg`) is the caller's.

#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
use core::sync::atomic::Ordering::{Acquire, Release};

use crate::byte_ring::{ByteReader, ByteRing, ByteRingLayout, ByteWriter, Transfer};
use crate::error::{RingError, SetupError};
use core::marker::PhantomData;

use crate::memory::{Mem, RingMemory};
use crate::shm::SharedMem;

/// Layout of the XenStore page; only its offsets are used.
#[repr(C)]
#[allow(dead_code)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored. Written by the guest.
    pub req: [u8; 1024],
    /// Replies and watch events. Written by xenstored.
    pub rsp: [u8; 1024],
    /// Consumer of `req`. Written by xenstored.
    pub req_cons: u32,
    /// Producer of `req`. Written by the guest.
    pub req_prod: u32,
    /// Consumer of `rsp`. Written by the guest.
    pub rsp_cons: u32,
    /// Producer of `rsp`. Written by xenstored.
    pub rsp_prod: u32,
    /// Feature bits of the server (`XENSTORE_SERVER_FEATURE_*`). Written by xenstored.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`. Written by both (reconnect handshake).
    pub connection: u32,
    /// `XENSTORE_ERROR_*`. Written by xenstored.
    pub error: u32,
    /// Event channel for xenstored to signal, when non-zero. Written by Xen / the builder.
    pub evtchn_port: u32,
}

static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, req), 0);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, rsp), 1024);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, req_cons), 2048);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, req_prod), 2052);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, rsp_cons), 2056);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, rsp_prod), 2060);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, server_features), 2064);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, connection), 2068);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, error), 2072);
static_assertions::const_assert_eq!(offset_of!(XenstoreDomainInterface, evtchn_port), 2076);
static_assertions::const_assert_eq!(size_of::<XenstoreDomainInterface>(), 2080);

/// Size of each XenStore byte ring.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// Server feature: the ring can be reconnected.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// Server feature: the `error` field is present.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `connection`: steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: reconnect in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index (what a server sets on a [`RingError`]).
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

const SERVER_FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
const CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
const ERROR: usize = offset_of!(XenstoreDomainInterface, error);
const EVTCHN_PORT: usize = offset_of!(XenstoreDomainInterface, evtchn_port);

/// The request ring: the guest writes, xenstored reads.
pub const XENSTORE_REQ: ByteRingLayout = ByteRingLayout {
    data: offset_of!(XenstoreDomainInterface, req),
    size: XENSTORE_RING_SIZE,
    cons: offset_of!(XenstoreDomainInterface, req_cons),
    prod: offset_of!(XenstoreDomainInterface, req_prod),
};

/// The response ring: xenstored writes, the guest reads.
pub const XENSTORE_RSP: ByteRingLayout = ByteRingLayout {
    data: offset_of!(XenstoreDomainInterface, rsp),
    size: XENSTORE_RING_SIZE,
    cons: offset_of!(XenstoreDomainInterface, rsp_cons),
    prod: offset_of!(XenstoreDomainInterface, rsp_prod),
};

/// The control words of the page. Plain values, written with Release and read with Acquire
/// so that a handshake (reset indices, then set `connection`) is seen in order; the peer's
/// values are hints to check, never trusted sizes.
#[derive(Debug)]
pub struct XenstoreControl<'a, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    _life: PhantomData<&'a ()>,
}

impl<M: RingMemory> XenstoreControl<'_, M> {
    /// `server_features` as the page holds it now.
    pub fn server_features(&self) -> u32 {
        self.mem.load_u32(SERVER_FEATURES, Acquire)
    }
    /// Sets `server_features` (xenstored's job).
    pub fn set_server_features(&self, v: u32) {
        self.mem.store_u32(SERVER_FEATURES, v, Release);
    }
    /// `connection` as the page holds it now.
    pub fn connection(&self) -> u32 {
        self.mem.load_u32(CONNECTION, Acquire)
    }
    /// Sets `connection` (the guest asks for `XENSTORE_RECONNECT`; xenstored answers
    /// `XENSTORE_CONNECTED` after resetting the indices).
    pub fn set_connection(&self, v: u32) {
        self.mem.store_u32(CONNECTION, v, Release);
    }
    /// `error` as the page holds it now.
    pub fn error(&self) -> u32 {
        self.mem.load_u32(ERROR, Acquire)
    }
    /// Sets `error` (xenstored's job).
    pub fn set_error(&self, v: u32) {
        self.mem.store_u32(ERROR, v, Release);
    }
    /// `evtchn_port` as the page holds it now.
    pub fn evtchn_port(&self) -> u32 {
        self.mem.load_u32(EVTCHN_PORT, Acquire)
    }
    /// Sets `evtchn_port` (the domain builder's job).
    pub fn set_evtchn_port(&self, v: u32) {
        self.mem.store_u32(EVTCHN_PORT, v, Release);
    }
}

/// A XenStore page, before it is turned into the guest's or xenstored's end.
#[derive(Debug)]
pub struct XenstoreRing<'a, M: RingMemory = SharedMem<'a>> {
    req: ByteRing<'a, M>,
    rsp: ByteRing<'a, M>,
    mem: Mem<M>,
}

impl<'a, M: RingMemory> XenstoreRing<'a, M> {
    /// The XenStore page in `mem` (at least 2080 bytes; normally the whole 4 KiB page).
    pub fn new(mem: M) -> Result<Self, SetupError> {
        let len = size_of::<XenstoreDomainInterface>();
        if mem.len() < len {
            return Err(SetupError::TooSmall { len: mem.len(), need: len });
        }
        let mem = Mem::new(mem);
        let req = ByteRing::from_mem(mem.duplicate(), XENSTORE_REQ)?;
        let rsp = ByteRing::from_mem(mem.duplicate(), XENSTORE_RSP)?;
        Ok(XenstoreRing { req, rsp, mem })
    }

    /// Zeroes the four indices (what a builder does on a fresh page, and xenstored on a
    /// reconnect).
    pub fn reset(&mut self) {
        self.req.reset();
        self.rsp.reset();
    }

    /// The page's control words.
    pub fn control(&self) -> XenstoreControl<'a, M> {
        XenstoreControl { mem: self.mem.duplicate(), _life: PhantomData }
    }

    /// The guest's end: writes `req`, reads `rsp`.
    pub fn guest(self) -> XenstoreGuest<'a, M> {
        XenstoreGuest {
            req: self.req.writer(),
            rsp: self.rsp.reader(),
            control: XenstoreControl { mem: self.mem, _life: PhantomData },
        }
    }

    /// Xenstored's end: reads `req`, writes `rsp`.
    pub fn server(self) -> XenstoreServer<'a, M> {
        XenstoreServer {
            req: self.req.reader(),
            rsp: self.rsp.writer(),
            control: XenstoreControl { mem: self.mem, _life: PhantomData },
        }
    }

    /// Both ends, for an in-process XenStore connection.
    pub fn split(self) -> (XenstoreGuest<'a, M>, XenstoreServer<'a, M>) {
        let other = XenstoreRing {
            req: self.req.duplicate(),
            rsp: self.rsp.duplicate(),
            mem: self.mem.duplicate(),
        };
        (self.guest(), other.server())
    }
}

/// The guest's end of the XenStore page.
#[derive(Debug)]
pub struct XenstoreGuest<'a, M: RingMemory = SharedMem<'a>> {
    req: ByteWriter<'a, M>,
    rsp: ByteReader<'a, M>,
    control: XenstoreControl<'a, M>,
}

impl<'a, M: RingMemory> XenstoreGuest<'a, M> {
    /// Writes request bytes; partial when the ring is full.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, RingError> {
        self.req.write(data)
    }
    /// Reads response bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, RingError> {
        self.rsp.read(buf)
    }
    /// Free bytes in `req`.
    pub fn write_space(&mut self) -> Result<u32, RingError> {
        self.req.space()
    }
    /// Bytes waiting in `rsp`.
    pub fn read_available(&mut self) -> Result<u32, RingError> {
        self.rsp.available()
    }
    /// The page's control words.
    pub fn control(&self) -> &XenstoreControl<'a, M> {
        &self.control
    }
}

/// Xenstored's end of the XenStore page.
#[derive(Debug)]
pub struct XenstoreServer<'a, M: RingMemory = SharedMem<'a>> {
    req: ByteReader<'a, M>,
    rsp: ByteWriter<'a, M>,
    control: XenstoreControl<'a, M>,
}

impl<'a, M: RingMemory> XenstoreServer<'a, M> {
    /// Writes response bytes; partial when the ring is full.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, RingError> {
        self.rsp.write(data)
    }
    /// Reads request bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, RingError> {
        self.req.read(buf)
    }
    /// Free bytes in `rsp`.
    pub fn write_space(&mut self) -> Result<u32, RingError> {
        self.rsp.space()
    }
    /// Bytes waiting in `req`.
    pub fn read_available(&mut self) -> Result<u32, RingError> {
        self.req.available()
    }
    /// The page's control words.
    pub fn control(&self) -> &XenstoreControl<'a, M> {
        &self.control
    }
}
