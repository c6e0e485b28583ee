//! `memory_op` (hypercall 12): growing and shrinking a domain's memory, the physmap, the memory
//! map and where the M2P table is.
//!
//! `cmd` is a `XENMEM_*` number. Xen keeps a restart position for preempted batch operations in
//! the bits of `cmd` above [`MEMOP_CMD_MASK`]; guests always pass those bits as zero.

use crate::types::{DomId, GuestHandle, Mfn};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Allocate extents; OUT: their MFNs in `extent_start` ([`XenMemoryReservation`]).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Free the extents whose GMFNs are in `extent_start` ([`XenMemoryReservation`]).
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Highest machine frame of RAM in the host; arg NULL, returns it (never fails).
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Pages currently allocated to a domain; arg `domid_t*`, returns the count.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum pages for a domain; arg `domid_t*`, returns the count.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// List of the MFNs holding the M2P table ([`XenMachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// Allocate memory for the PFNs in `extent_start` ([`XenMemoryReservation`]).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a special page (shared info, grant frame) at a GPFN ([`XenAddToPhysmap`]).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The domain's pseudo-physical memory map ([`XenMemoryMap`] of [`E820Entry`]).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The host's machine memory map (dom0) ([`XenMemoryMap`] of [`E820Entry`]).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange extents for others ([`XenMemoryExchange`]).
pub const XENMEM_EXCHANGE: u32 = 11;
/// Where the M2P is mapped ([`XenMachphysMapping`]).
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// Set another domain's memory map (toolstack) ([`XenForeignMemoryMap`]).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// Highest GPFN in use by a domain; arg `domid_t*`, returns it.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Remove a GPFN mapping ([`XenRemoveFromPhysmap`]).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Populate-on-demand target (set).
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// Populate-on-demand target (get).
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// Sharing statistics.
pub const XENMEM_GET_SHARING_FREED_PAGES: u32 = 18;
/// Sharing statistics.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u32 = 19;
/// Paging (toolstack).
pub const XENMEM_PAGING_OP: u32 = 20;
/// Access control (toolstack).
pub const XENMEM_ACCESS_OP: u32 = 21;
/// Memory sharing (toolstack).
pub const XENMEM_SHARING_OP: u32 = 22;
/// Batched add-to-physmap.
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// Claim pages for a domain being built.
pub const XENMEM_CLAIM_PAGES: u32 = 24;
/// M2P frames of the compat (32-bit) table.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// Virtual NUMA information.
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// Reserved device memory map.
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u32 = 27;
/// Map a resource (grant table, ioreq server pages).
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

/// Bits of `cmd` that hold the op; the rest is Xen's restart position.
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;
/// Shift of the restart position in `cmd`.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

/// `mem_flags`: restrict allocations to machine addresses of at most this many bits (0 = any).
#[must_use]
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits & 0xff
}
/// `mem_flags`: allocate from NUMA node `node`.
#[must_use]
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}
/// `mem_flags`: populate with populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `mem_flags`: only the given node.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `mem_flags`: the node is virtual.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// Argument of increase/decrease_reservation and populate_physmap (32 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryReservation {
    /// IN: guest handle of a frame-number array: increase: OUT MFNs; decrease: IN GMFNs;
    /// populate: IN GPFNs, OUT GMFNs (the meaning changes with the op, so the elements are
    /// plain `u64`s).
    pub extent_start: GuestHandle<u64>,
    /// IN: number of extents.
    pub nr_extents: u64,
    /// IN: each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// IN: `XENMEMF_*`.
    pub mem_flags: u32,
    /// IN: domain (`DOMID_SELF` unless privileged).
    pub domid: DomId,
    /// Padding.
    pub _pad: [u8; 6],
}

/// Argument of `XENMEM_exchange` (72 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryExchange {
    /// IN: extents to give up (GMFNs).
    pub input: XenMemoryReservation,
    /// IN: GPFNs to populate; OUT: GMFNs allocated.
    pub output: XenMemoryReservation,
    /// OUT: input extents exchanged so far. Must be 0 on the first call.
    pub nr_exchanged: u64,
}

/// Argument of `XENMEM_machphys_mfn_list` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMachphysMfnList {
    /// IN: size of the `extent_start` array.
    pub max_extents: u32,
    /// Padding.
    pub _pad0: u32,
    /// IN: guest handle of an array; OUT: MFN of each 2 MiB M2P chunk.
    pub extent_start: GuestHandle<Mfn>,
    /// OUT: entries written.
    pub nr_extents: u32,
    /// Padding.
    pub _pad1: u32,
}

/// Argument of `XENMEM_machphys_mapping` (24 bytes). All OUT.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMachphysMapping {
    /// OUT: virtual start of the read-only M2P mapping.
    pub v_start: u64,
    /// OUT: virtual end.
    pub v_end: u64,
    /// OUT: largest MFN that can be looked up.
    pub max_mfn: u64,
}

/// `XenAddToPhysmap::space`: the shared info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `space`: a grant-table frame (`idx` = frame; `| XENMAPIDX_grant_table_status` for v2 status).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `space`: an existing GMFN.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `space`: a range of `size` GMFNs.
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `space`: a foreign GMFN (batch only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `space`: device MMIO (Arm).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// `idx` flag selecting grant status frames.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// Argument of `XENMEM_add_to_physmap` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenAddToPhysmap {
    /// IN: domain whose physmap changes.
    pub domid: DomId,
    /// IN: number of pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// IN: `XENMAPSPACE_*`.
    pub space: u32,
    /// IN: index into the space.
    pub idx: u64,
    /// IN: GPFN where the page should appear.
    pub gpfn: u64,
}

/// Argument of `XENMEM_remove_from_physmap` (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenRemoveFromPhysmap {
    /// IN: domain.
    pub domid: DomId,
    /// Padding.
    pub _pad: [u8; 6],
    /// IN: GPFN to unmap.
    pub gpfn: u64,
}

/// Argument of `XENMEM_memory_map` / `XENMEM_machine_memory_map` (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenMemoryMap {
    /// IN: capacity of `buffer` in entries; OUT: entries written.
    pub nr_entries: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: guest handle of an [`E820Entry`] array (20-byte packed entries).
    pub buffer: GuestHandle<E820Entry>,
}

/// Argument of `XENMEM_set_memory_map` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenForeignMemoryMap {
    /// IN: domain.
    pub domid: DomId,
    /// Padding.
    pub _pad: [u8; 6],
    /// IN: the map.
    pub map: XenMemoryMap,
}

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables (reclaimable).
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI NVS.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One memory-map entry in BIOS INT 15h/E820 format: 20 bytes, *packed* (no padding between
/// entries), which is how Xen's memory maps lay them out.
#[repr(C, packed)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*`.
    pub kind: u32,
}

crate::assert_layout!(
    XenMemoryReservation,
    size = 32,
    extent_start = 0,
    nr_extents = 8,
    extent_order = 16,
    mem_flags = 20,
    domid = 24
);
crate::assert_layout!(XenMemoryExchange, size = 72, input = 0, output = 32, nr_exchanged = 64);
crate::assert_layout!(
    XenMachphysMfnList,
    size = 24,
    max_extents = 0,
    extent_start = 8,
    nr_extents = 16
);
crate::assert_layout!(XenMachphysMapping, size = 24, v_start = 0, v_end = 8, max_mfn = 16);
crate::assert_layout!(
    XenAddToPhysmap,
    size = 24,
    domid = 0,
    size = 2,
    space = 4,
    idx = 8,
    gpfn = 16
);
crate::assert_layout!(XenRemoveFromPhysmap, size = 16, domid = 0, gpfn = 8);
crate::assert_layout!(XenMemoryMap, size = 16, nr_entries = 0, buffer = 8);
crate::assert_layout!(XenForeignMemoryMap, size = 24, domid = 0, map = 8);
crate::assert_layout!(E820Entry, size = 20, addr = 0, size = 8, kind = 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_is_packed() {
        let e = [
            E820Entry { addr: 0, size: 0x9_f000, kind: E820_RAM },
            E820Entry { addr: 0x10_0000, size: 0x100, kind: E820_RESERVED },
        ];
        let b = e.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[20..28], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[36..40], &E820_RESERVED.to_le_bytes());
    }

    #[test]
    fn flags() {
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_address_bits(32), 32);
        assert_eq!(MEMOP_CMD_MASK, 63);
    }
}
