//! Block device rings (`io/blkif.h`). The frontend puts [`BlkifRequest`]s on a shared ring
//! (112-byte slots, 32 per page); each names up to 11 granted pages and the 512-byte sectors
//! within them. The backend answers with [`BlkifResponse`]s in the same slots.
//!
//! A backend must copy each request out of the ring once and validate the copy: `nr_segments`
//! against [`BLKIF_MAX_SEGMENTS_PER_REQUEST`], and `first_sect <= last_sect <= 7`.

use crate::types::GrantRef;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Read sectors into the segments.
pub const BLKIF_OP_READ: u8 = 0;
/// Write sectors from the segments.
pub const BLKIF_OP_WRITE: u8 = 1;
/// Write with a barrier (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Flush the disk cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Reserved (was a vendor extension).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Discard sectors ([`BlkifRequestDiscard`], `feature-discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// Indirect request ([`BlkifRequestIndirect`], `feature-max-indirect-segments`).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// Segments in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect pages in an indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segment descriptors per indirect page.
pub const BLKIF_SEGMENTS_PER_INDIRECT_FRAME: usize = 4096 / 8;
/// Sector size the protocol counts in, whatever the disk's.
pub const BLKIF_SECTOR_SIZE: u64 = 512;
/// Last valid sector index within a 4 KiB segment page.
pub const BLKIF_MAX_SECT_IN_PAGE: u8 = 7;
/// Slots in a one-page block ring.
pub const BLKIF_RING_SLOTS: u32 = super::ring::nr_slots(4096, 112);

/// `BlkifRequestDiscard::flag`: secure discard.
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// Response status: success.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// Response status: failure (-EIO).
pub const BLKIF_RSP_ERROR: i16 = -1;
/// Response status: operation not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// `info` node bit: the disk is a CD-ROM.
pub const VDISK_CDROM: u32 = 0x1;
/// `info` node bit: removable media.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `info` node bit: read-only.
pub const VDISK_READONLY: u32 = 0x4;

/// One segment: sectors `first_sect..=last_sect` of a granted page (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BlkifRequestSegment {
    /// Grant of the I/O buffer page.
    pub gref: GrantRef,
    /// First sector in the page (inclusive, 0..=7).
    pub first_sect: u8,
    /// Last sector in the page (inclusive, 0..=7).
    pub last_sect: u8,
    /// Padding.
    pub _pad: u16,
}

/// A read/write request (112 bytes). Written by the frontend.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used (1..=11 for read/write).
    pub nr_segments: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding.
    pub _pad: u32,
    /// Frontend's cookie, echoed in the response.
    pub id: u64,
    /// First 512-byte sector on the disk.
    pub sector_number: u64,
    /// The segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// A discard request, in the same slot (32 bytes used).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// `BLKIF_DISCARD_*`.
    pub flag: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding.
    pub _pad: u32,
    /// Cookie.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// Number of sectors.
    pub nr_sectors: u64,
}

/// An indirect request, in the same slot (64 bytes used): the segments are in granted pages of
/// [`BlkifRequestSegment`]s.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BlkifRequestIndirect {
    /// `BLKIF_OP_INDIRECT`.
    pub operation: u8,
    /// `BLKIF_OP_READ` or `_WRITE`.
    pub indirect_op: u8,
    /// Total segments.
    pub nr_segments: u16,
    /// Padding.
    pub _pad0: u32,
    /// Cookie.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// Virtual device handle.
    pub handle: u16,
    /// Padding.
    pub _pad1: u16,
    /// Grants of the pages holding the segment descriptors.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Padding.
    pub _pad2: u32,
}

/// A response (16 bytes). Written by the backend.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's `operation`.
    pub operation: u8,
    /// Padding.
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding.
    pub _pad1: u32,
}

crate::assert_layout!(BlkifRequestSegment, size = 8, gref = 0, first_sect = 4, last_sect = 5);
crate::assert_layout!(
    BlkifRequest,
    size = 112,
    operation = 0,
    nr_segments = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    seg = 24
);
crate::assert_layout!(
    BlkifRequestDiscard,
    size = 32,
    operation = 0,
    flag = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    nr_sectors = 24
);
crate::assert_layout!(
    BlkifRequestIndirect,
    size = 64,
    operation = 0,
    indirect_op = 1,
    nr_segments = 2,
    id = 8,
    sector_number = 16,
    handle = 24,
    indirect_grefs = 28
);
crate::assert_layout!(BlkifResponse, size = 16, id = 0, operation = 8, status = 10);
static_assertions::const_assert_eq!(BLKIF_RING_SLOTS, 32);
