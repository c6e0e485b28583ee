//! Wire layout of Xen's request/response ring (`io/ring.h`): header offsets, slot size and
//! slot count, as pure `const fn`s so that layouts are checked at compile time and the numbers
//! other crates rely on (32 blkif slots per page, 256 netif slots) are tested.
//!
//! The header is described by a `#[repr(C)]` struct whose field offsets are asserted; the ring
//! code never builds a reference to it over shared memory, it only uses the offsets.

#![forbid(unsafe_code)]

use core::mem::{align_of, offset_of, size_of};

/// Layout of the 64-byte shared ring header (`struct *_sring` up to `ring[]`). Written by:
/// `req_prod` front, `req_event` back, `rsp_prod` back, `rsp_event` front.
#[repr(C)]
#[allow(dead_code)] // a layout description: only its offsets are used
pub struct SringHeader {
    /// Requests published by the front end (free-running). OUT from the front.
    pub req_prod: u32,
    /// The back end wants an event when `req_prod` passes this. OUT from the back.
    pub req_event: u32,
    /// Responses published by the back end (free-running). OUT from the back.
    pub rsp_prod: u32,
    /// The front end wants an event when `rsp_prod` passes this. OUT from the front.
    pub rsp_event: u32,
    /// Protocol-private bytes (netif `smartpoll_active`); zeroed by init, otherwise unused here.
    pub pvt: [u8; 4],
    /// Padding up to the first slot.
    pub _pad: [u8; 44],
}

/// Byte offset of `req_prod`.
pub const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
/// Byte offset of `req_event`.
pub const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
/// Byte offset of `rsp_prod`.
pub const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
/// Byte offset of `rsp_event`.
pub const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);
/// Byte offset of the private bytes.
pub const PVT: usize = offset_of!(SringHeader, pvt);
/// Byte offset of the first slot (`ring[0]`).
pub const RING: usize = size_of::<SringHeader>();

static_assertions::const_assert_eq!(REQ_PROD, 0);
static_assertions::const_assert_eq!(REQ_EVENT, 4);
static_assertions::const_assert_eq!(RSP_PROD, 8);
static_assertions::const_assert_eq!(RSP_EVENT, 12);
static_assertions::const_assert_eq!(PVT, 16);
static_assertions::const_assert_eq!(RING, 64);

/// Largest power of two `<= x` (0 for 0): Xen's `__RD32`.
pub const fn round_down_pow2(x: usize) -> usize {
    if x == 0 { 0 } else { 1 << (usize::BITS - 1 - x.leading_zeros()) }
}

/// Size of one slot: the size of the C union of the request and response types, i.e. the
/// larger size rounded up to the stricter alignment.
pub const fn slot_size<Req, Rsp>() -> usize {
    let size = max(size_of::<Req>(), size_of::<Rsp>());
    let align = max(align_of::<Req>(), align_of::<Rsp>());
    size.div_ceil(align) * align
}

/// Number of slots a ring of `bytes` bytes (header included) holds with `slot`-byte slots:
/// Xen's `__RING_SIZE`, the largest power of two that fits. 0 if not even one slot fits.
pub const fn ring_size(bytes: usize, slot: usize) -> usize {
    if slot == 0 || bytes < RING {
        return 0;
    }
    round_down_pow2((bytes - RING) / slot)
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}
