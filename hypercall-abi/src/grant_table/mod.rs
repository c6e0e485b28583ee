//! Grant tables (`grant_table_op`, hypercall 20), version 1 only.
//!
//! A domain shares a page by writing a [`GrantEntryV1`] into its grant table (pages the
//! hypervisor owns, mapped into the granter via `GNTTABOP_setup_table`) and passing the entry's
//! index, a [`GrantRef`], to the peer. The peer then maps or copies it with the ops below. Field
//! tags follow Xen: `[GST]` is written by the granting guest, `[XEN]` by the hypervisor.
//!
//! Every op takes an array of its struct and a count; each element gets its own `status`
//! (`GNTST_*`), while the hypercall's return value only reports failure to process the batch.
//! Each op struct implements [`GnttabOp`], which ties it to its command number, so the guest
//! wrappers cannot pass a struct with the wrong `GNTTABOP_*`.
//!
//! The table entries themselves, and the granter's write protocol, are in [`entry`] (re-exported
//! here).

pub mod entry;

pub use entry::*;

use crate::types::{DomId, Gfn, GrantRef, GuestHandle, Mfn};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A grant-table op struct and the `GNTTABOP_*` command it belongs to.
pub trait GnttabOp: FromBytes + IntoBytes + Immutable {
    /// The command whose argument array this struct is.
    const CMD: u32;
}

macro_rules! gnttab_op {
    ($($t:ty => $cmd:expr),* $(,)?) => {
        $(impl GnttabOp for $t {
            const CMD: u32 = $cmd;
        })*
    };
}

/// Map a grant ([`GnttabMapGrantRef`]).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a mapping ([`GnttabUnmapGrantRef`]).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Get the frames of a grant table ([`GnttabSetupTable`]).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a table to the hypervisor console ([`GnttabDumpTable`]).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer a page to another domain ([`GnttabTransfer`]).
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between grants/frames without mapping ([`GnttabCopy`]).
pub const GNTTABOP_COPY: u32 = 5;
/// Current and maximum table size ([`GnttabQuerySize`]).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap and replace a mapping ([`GnttabUnmapAndReplace`]).
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select the table version ([`GnttabSetVersion`]); we accept only 1.
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// v2 status frames. Not implemented by us (v1 only).
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Query a domain's table version ([`GnttabGetVersion`]).
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two entries ([`GnttabSwapGrantRef`]).
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Cache maintenance on grants (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// Map the grant for access by I/O devices (returns `dev_bus_addr`).
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Map the grant for access by host CPUs at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// With `host_map`: the mapping is usable by guest user space too.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// With `host_map`: `host_addr` is the machine address of the PTE to write, not a VA.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// Bits 16.. are left for the guest's own use in the PTE (`XENFEAT_gnttab_map_avail_bits`).
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0 << 16;

/// A mapping handle returned by map and given back to unmap.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct GrantHandle(pub u32);

/// `GNTTABOP_map_grant_ref` (32 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (VA, or PTE machine address with `GNTMAP_contains_pte`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference in `dom`'s table.
    pub gref: GrantRef,
    /// IN: granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for unmap.
    pub handle: GrantHandle,
    /// OUT: bus address with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

/// `GNTTABOP_unmap_grant_ref` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabUnmapGrantRef {
    /// IN: the `host_addr` given to map (0 if not host mapped).
    pub host_addr: u64,
    /// IN: the `dev_bus_addr` map returned (0 if not device mapped).
    pub dev_bus_addr: u64,
    /// IN: the handle map returned.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad: u16,
}

/// `GNTTABOP_setup_table` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabSetupTable {
    /// IN: domain (`DOMID_SELF` unless privileged).
    pub dom: DomId,
    /// Padding.
    pub _pad0: u16,
    /// IN: number of table frames wanted (grows the table up to the maximum).
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad1: [u8; 6],
    /// IN: guest handle of an array of `nr_frames` frame numbers; OUT (the hypervisor writes
    /// the MFNs of the table frames into it).
    pub frame_list: GuestHandle<Mfn>,
}

/// `GNTTABOP_dump_table` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabDumpTable {
    /// IN: domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `GNTTABOP_transfer` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabTransfer {
    /// IN: frame to give away.
    pub mfn: Mfn,
    /// IN: receiving domain.
    pub domid: DomId,
    /// Padding.
    pub _pad0: u16,
    /// IN: `GTF_accept_transfer` entry in the receiver's table.
    pub gref: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad1: [u8; 6],
}

/// `GNTCOPY` flag: `source.u` is a grant reference (else a GMFN of the source domain).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY` flag: `dest.u` is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// One side of a copy (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabCopyPtr {
    /// IN: union of a grant reference (low 32 bits) or a GMFN (all 64), per the flags.
    pub u: u64,
    /// IN: domain owning the frame or grant.
    pub domid: DomId,
    /// IN: byte offset inside the page.
    pub offset: u16,
    /// Padding.
    pub _pad: u32,
}

impl GnttabCopyPtr {
    /// A side named by grant reference.
    #[must_use]
    pub const fn gref(domid: DomId, gref: GrantRef, offset: u16) -> Self {
        Self { u: gref.0 as u64, domid, offset, _pad: 0 }
    }

    /// A side named by frame number (a GFN of `domid`, which must be the caller or
    /// `DOMID_SELF`: a copy names other domains' memory only through their grants).
    #[must_use]
    pub const fn gmfn(domid: DomId, gmfn: Gfn, offset: u16) -> Self {
        Self { u: gmfn.0, domid, offset, _pad: 0 }
    }

    /// The union read as a grant reference.
    #[must_use]
    pub const fn as_gref(&self) -> GrantRef {
        GrantRef(self.u as u32)
    }

    /// The union read as a frame number.
    #[must_use]
    pub const fn as_gmfn(&self) -> Gfn {
        Gfn(self.u)
    }
}

/// `GNTTABOP_copy` (40 bytes): copy `len` bytes; neither side may cross a page boundary.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabCopy {
    /// IN: source.
    pub source: GnttabCopyPtr,
    /// IN: destination.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad: u16,
}

/// `GNTTABOP_query_size` (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabQuerySize {
    /// IN: domain.
    pub dom: DomId,
    /// Padding.
    pub _pad0: u16,
    /// OUT: current table frames.
    pub nr_frames: u32,
    /// OUT: maximum table frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad1: u16,
}

/// `GNTTABOP_unmap_and_replace` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabUnmapAndReplace {
    /// IN: the mapped address.
    pub host_addr: u64,
    /// IN: address whose mapping moves to `host_addr` (it is zapped).
    pub new_addr: u64,
    /// IN: the handle map returned.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad: u16,
}

/// `GNTTABOP_set_version` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabSetVersion {
    /// IN: wanted version; OUT: version in force.
    pub version: u32,
}

/// `GNTTABOP_get_version` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabGetVersion {
    /// IN: domain.
    pub dom: DomId,
    /// Padding.
    pub _pad: u16,
    /// OUT: its version.
    pub version: u32,
}

/// `GNTTABOP_swap_grant_ref` (12 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GnttabSwapGrantRef {
    /// IN: first entry.
    pub ref_a: GrantRef,
    /// IN: second entry.
    pub ref_b: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub _pad: u16,
}

gnttab_op!(
    GnttabMapGrantRef => GNTTABOP_MAP_GRANT_REF,
    GnttabUnmapGrantRef => GNTTABOP_UNMAP_GRANT_REF,
    GnttabSetupTable => GNTTABOP_SETUP_TABLE,
    GnttabDumpTable => GNTTABOP_DUMP_TABLE,
    GnttabTransfer => GNTTABOP_TRANSFER,
    GnttabCopy => GNTTABOP_COPY,
    GnttabQuerySize => GNTTABOP_QUERY_SIZE,
    GnttabUnmapAndReplace => GNTTABOP_UNMAP_AND_REPLACE,
    GnttabSetVersion => GNTTABOP_SET_VERSION,
    GnttabGetVersion => GNTTABOP_GET_VERSION,
    GnttabSwapGrantRef => GNTTABOP_SWAP_GRANT_REF,
);

crate::assert_layout!(
    GnttabMapGrantRef,
    size = 32,
    host_addr = 0,
    flags = 8,
    gref = 12,
    dom = 16,
    status = 18,
    handle = 20,
    dev_bus_addr = 24
);
crate::assert_layout!(
    GnttabUnmapGrantRef,
    size = 24,
    host_addr = 0,
    dev_bus_addr = 8,
    handle = 16,
    status = 20
);
crate::assert_layout!(
    GnttabSetupTable,
    size = 24,
    dom = 0,
    nr_frames = 4,
    status = 8,
    frame_list = 16
);
crate::assert_layout!(GnttabDumpTable, size = 4, dom = 0, status = 2);
crate::assert_layout!(GnttabTransfer, size = 24, mfn = 0, domid = 8, gref = 12, status = 16);
crate::assert_layout!(GnttabCopyPtr, size = 16, u = 0, domid = 8, offset = 10);
crate::assert_layout!(
    GnttabCopy,
    size = 40,
    source = 0,
    dest = 16,
    len = 32,
    flags = 34,
    status = 36
);
crate::assert_layout!(
    GnttabQuerySize,
    size = 16,
    dom = 0,
    nr_frames = 4,
    max_nr_frames = 8,
    status = 12
);
crate::assert_layout!(
    GnttabUnmapAndReplace,
    size = 24,
    host_addr = 0,
    new_addr = 8,
    handle = 16,
    status = 20
);
crate::assert_layout!(GnttabSetVersion, size = 4, version = 0);
crate::assert_layout!(GnttabGetVersion, size = 8, dom = 0, version = 4);
crate::assert_layout!(GnttabSwapGrantRef, size = 12, ref_a = 0, ref_b = 4, status = 8);

/// Normal return.
pub const GNTST_OKAY: i16 = 0;
/// General undefined error.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Unrecognised or inappropriate handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Not enough privilege.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// Invalid page for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// Copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// Out of space (handles etc).
pub const GNTST_NO_SPACE: i16 = -13;

/// Name of a `GNTST_*` status, for logs.
#[must_use]
pub const fn gntst_name(status: i16) -> Option<&'static str> {
    Some(match status {
        GNTST_OKAY => "okay",
        GNTST_GENERAL_ERROR => "general_error",
        GNTST_BAD_DOMAIN => "bad_domain",
        GNTST_BAD_GNTREF => "bad_gntref",
        GNTST_BAD_HANDLE => "bad_handle",
        GNTST_BAD_VIRT_ADDR => "bad_virt_addr",
        GNTST_BAD_DEV_ADDR => "bad_dev_addr",
        GNTST_NO_DEVICE_SPACE => "no_device_space",
        GNTST_PERMISSION_DENIED => "permission_denied",
        GNTST_BAD_PAGE => "bad_page",
        GNTST_BAD_COPY_ARG => "bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG => "address_too_big",
        GNTST_EAGAIN => "eagain",
        GNTST_NO_SPACE => "no_space",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names() {
        assert_eq!(gntst_name(0), Some("okay"));
        assert_eq!(gntst_name(-3), Some("bad_gntref"));
        assert_eq!(gntst_name(-13), Some("no_space"));
        assert_eq!(gntst_name(-14), None);
        assert_eq!(gntst_name(1), None);
    }

    #[test]
    fn copy_ptr_union() {
        let p = GnttabCopyPtr::gref(DomId(1), GrantRef(77), 512);
        assert_eq!(p.as_gref(), GrantRef(77));
        assert_eq!(&p.as_bytes()[..8], &[77, 0, 0, 0, 0, 0, 0, 0]);
        let f = GnttabCopyPtr::gmfn(DomId(1), Gfn(0x1_0000_0000), 0);
        assert_eq!((f.u, f.as_gmfn()), (0x1_0000_0000, Gfn(0x1_0000_0000)));
    }
}
