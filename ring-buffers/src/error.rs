//! Error and outcome values: what a ring operation tells its caller.
//!
//! [`RingError`] is the peer's fault: it says which protocol rule the peer broke and the index
//! values seen, so the caller can log them (rate-limited: the peer can trigger this at will) and
//! disconnect the device. Once a ring end has returned a `RingError` it is *broken*: every later
//! operation that reads the peer's indices returns the same error, because our private indices
//! can no longer be trusted to match anything the peer will do. [`SetupError`] is the caller's
//! fault (memory too small or misaligned); [`Full`] is ordinary back-pressure.

#![forbid(unsafe_code)]

use core::fmt;

/// A protocol violation by the peer, detected by Xen's overflow rules (or the stricter rules
/// this crate adds, documented per variant). Acting on it usually means closing the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RingError {
    /// Seen by a back end: the front end's `req_prod` claims requests that cannot exist. Either
    /// more than a ring's worth past our responses (Xen's `RING_REQUEST_PROD_OVERFLOW`), or it
    /// moved backwards from a value already seen.
    BadRequestProducer {
        /// The `req_prod` read from the shared page.
        req_prod: u32,
        /// The last `req_prod` seen and accepted before.
        req_prod_seen: u32,
        /// Our private response producer (`rsp_prod_pvt`).
        rsp_prod_pvt: u32,
    },
    /// Seen by a front end: the back end's `rsp_prod` claims responses to requests we never
    /// published, or moved backwards from a value already seen. (Stricter than Xen's
    /// `RING_RESPONSE_PROD_OVERFLOW`, which only bounds `rsp_prod - rsp_cons` by the ring size;
    /// an honest back end can never trip either rule.)
    BadResponseProducer {
        /// The `rsp_prod` read from the shared page.
        rsp_prod: u32,
        /// The last `rsp_prod` seen and accepted before.
        rsp_prod_seen: u32,
        /// Our published request producer (the `req_prod` we last wrote).
        req_prod: u32,
    },
    /// Seen by a byte-ring reader: the writer's producer index is more than the ring size ahead
    /// of our consumer index (or behind it).
    BadProducer {
        /// The producer index read from the shared page.
        prod: u32,
        /// Our private consumer index.
        cons: u32,
    },
    /// Seen by a byte-ring writer: the reader's consumer index is ahead of what we produced, or
    /// more than the ring size behind it.
    BadConsumer {
        /// Our private producer index.
        prod: u32,
        /// The consumer index read from the shared page.
        cons: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::BadRequestProducer { req_prod, req_prod_seen, rsp_prod_pvt } => write!(
                f,
                "peer broke the ring: req_prod {req_prod:#x} (seen {req_prod_seen:#x}, \
                 rsp_prod_pvt {rsp_prod_pvt:#x})"
            ),
            RingError::BadResponseProducer { rsp_prod, rsp_prod_seen, req_prod } => write!(
                f,
                "peer broke the ring: rsp_prod {rsp_prod:#x} (seen {rsp_prod_seen:#x}, \
                 req_prod {req_prod:#x})"
            ),
            RingError::BadProducer { prod, cons } => {
                write!(f, "peer broke the byte ring: prod {prod:#x}, cons {cons:#x}")
            }
            RingError::BadConsumer { prod, cons } => {
                write!(f, "peer broke the byte ring: cons {cons:#x}, prod {prod:#x}")
            }
        }
    }
}

/// The memory handed to a ring constructor cannot hold that ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupError {
    /// Fewer bytes than the layout needs (for a request/response ring: the 64-byte header and
    /// at least one slot).
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The base address is not aligned enough for the index words.
    Misaligned {
        /// The address given.
        addr: usize,
        /// The alignment needed.
        align: usize,
    },
    /// The ring would hold more than 2^31 slots, beyond what u32 indices can track.
    TooLarge,
    /// A byte-ring layout is inconsistent (size not a power of two, fields overlapping, an
    /// index word misaligned or out of bounds).
    BadLayout,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SetupError::TooSmall { len, need } => {
                write!(f, "ring memory too small: {len} bytes, need {need}")
            }
            SetupError::Misaligned { addr, align } => {
                write!(f, "ring memory at {addr:#x} not {align}-byte aligned")
            }
            SetupError::TooLarge => f.write_str("ring larger than 2^31 slots"),
            SetupError::BadLayout => f.write_str("inconsistent byte-ring layout"),
        }
    }
}

/// No slot for this item: the front end has `size` requests outstanding, or the back end has
/// no consumed request left to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring full")
    }
}

/// Whether the peer must be sent an event after a push: the value of Xen's
/// `RING_PUSH_*_AND_CHECK_NOTIFY`. The ring knows nothing of event channels; the caller sends
/// the notification (e.g. `EVTCHNOP_send`) when this is [`Notify::Yes`].
#[must_use = "a Notify::Yes that is dropped is a lost wake-up"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notify {
    /// The peer may be asleep waiting for what was just published: send it an event.
    Yes,
    /// The peer asked not to be woken for this (it is still working, or nothing was published).
    No,
}

impl Notify {
    /// `true` for [`Notify::Yes`].
    #[inline]
    pub fn is_yes(self) -> bool {
        matches!(self, Notify::Yes)
    }
}

impl From<bool> for Notify {
    #[inline]
    fn from(yes: bool) -> Self {
        if yes { Notify::Yes } else { Notify::No }
    }
}

impl From<Notify> for bool {
    #[inline]
    fn from(n: Notify) -> bool {
        n.is_yes()
    }
}
