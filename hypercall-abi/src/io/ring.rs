//! Layout of a shared request/response ring page (`io/ring.h`): a 64-byte header of
//! free-running `u32` indices, then `nr_slots` entries, each the size of the larger of the
//! request and response types. `nr_slots` is the largest power of two that fits.
//!
//! Initial state: both producers 0, both event indices 1. A side notifies its peer after
//! publishing `new_prod` (from `old_prod`) only if `new_prod - event < new_prod - old_prod`
//! (u32 arithmetic): the peer asked to be woken for an index in that window.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Offset of `req_prod` (written by the frontend).
pub const REQ_PROD: usize = 0;
/// Offset of `req_event` (written by the backend: wake me when `req_prod` passes this).
pub const REQ_EVENT: usize = 4;
/// Offset of `rsp_prod` (written by the backend).
pub const RSP_PROD: usize = 8;
/// Offset of `rsp_event` (written by the frontend).
pub const RSP_EVENT: usize = 12;
/// Offset of the 4 private bytes (`pvt`; netif uses byte 0 as `smartpoll_active`).
pub const PVT: usize = 16;
/// Size of the header; slots start here.
pub const HEADER_SIZE: usize = 64;

/// The ring header (64 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SringHeader {
    /// Frontend's request producer index.
    pub req_prod: u32,
    /// Backend's request notification threshold.
    pub req_event: u32,
    /// Backend's response producer index.
    pub rsp_prod: u32,
    /// Frontend's response notification threshold.
    pub rsp_event: u32,
    /// Protocol-private bytes; zeroed at init.
    pub pvt: [u8; 4],
    /// Padding to 64 bytes; zeroed at init.
    pub _pad: [u32; 11],
}

crate::assert_layout!(
    SringHeader,
    size = HEADER_SIZE,
    req_prod = REQ_PROD,
    req_event = REQ_EVENT,
    rsp_prod = RSP_PROD,
    rsp_event = RSP_EVENT,
    pvt = PVT
);

/// Number of slots in a ring of `ring_bytes` (normally 4096) whose entries are `entry_size`
/// bytes: the largest power of two that fits after the header (0 if none fits).
#[must_use]
pub const fn nr_slots(ring_bytes: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || ring_bytes <= HEADER_SIZE {
        return 0;
    }
    let n = (ring_bytes - HEADER_SIZE) / entry_size;
    if n == 0 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) }
}

/// True if the side that moved a producer from `old` to `new` must notify, given the peer's
/// event index `event` (`RING_PUSH_*_AND_CHECK_NOTIFY`).
#[must_use]
pub const fn need_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_counts() {
        assert_eq!(nr_slots(4096, 112), 32);
        assert_eq!(nr_slots(4096, 12), 256);
        assert_eq!(nr_slots(4096, 8), 256);
        assert_eq!(nr_slots(4096, 64), 32);
        assert_eq!(nr_slots(4096, 4032), 1);
        assert_eq!(nr_slots(4096, 5000), 0);
        assert_eq!(nr_slots(64, 8), 0);
    }

    #[test]
    fn notify_window() {
        // Peer wants a wake-up at index 1; we publish 0 -> 1.
        assert!(need_notify(0, 1, 1));
        // Peer wants index 5; we publish 0 -> 3: not yet.
        assert!(!need_notify(0, 3, 5));
        // Wrapping indices.
        assert!(need_notify(u32::MAX - 1, 1, u32::MAX));
    }
}
