//! `physdev_op` (hypercall 33): I/O privilege, physical IRQs and PCI devices, mostly for dom0.
//!
//! A PV kernel runs in ring 3, so `in`/`out` fault unless the hypervisor grants I/O access:
//! `PHYSDEVOP_set_iopl` sets the virtual IOPL (ports allowed at that IOPL are emulated or
//! passed through) and `PHYSDEVOP_set_iobitmap` installs a per-port bitmap.

use crate::types::DomId;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Unmask notification for an IRQ (legacy); arg NULL.
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// Query whether an IRQ needs an EOI ([`PhysdevIrqStatusQuery`]).
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5;
/// Set the virtual IOPL ([`PhysdevSetIopl`]).
pub const PHYSDEVOP_SET_IOPL: u32 = 6;
/// Install an I/O port bitmap ([`PhysdevSetIobitmap`]).
pub const PHYSDEVOP_SET_IOBITMAP: u32 = 7;
/// Read an IO-APIC register ([`PhysdevApic`]).
pub const PHYSDEVOP_APIC_READ: u32 = 8;
/// Write an IO-APIC register ([`PhysdevApic`]).
pub const PHYSDEVOP_APIC_WRITE: u32 = 9;
/// Allocate a vector for an IRQ ([`PhysdevIrq`]).
pub const PHYSDEVOP_ALLOC_IRQ_VECTOR: u32 = 10;
/// Free an IRQ vector ([`PhysdevIrq`]).
pub const PHYSDEVOP_FREE_IRQ_VECTOR: u32 = 11;
/// Signal end of interrupt for a PIRQ ([`PhysdevEoi`]).
pub const PHYSDEVOP_EOI: u32 = 12;
/// Map a GSI/MSI to a PIRQ ([`PhysdevMapPirq`]).
pub const PHYSDEVOP_MAP_PIRQ: u32 = 13;
/// Unmap a PIRQ ([`PhysdevUnmapPirq`]).
pub const PHYSDEVOP_UNMAP_PIRQ: u32 = 14;
/// Report a PCI device ([`PhysdevManagePci`]).
pub const PHYSDEVOP_MANAGE_PCI_ADD: u32 = 15;
/// Remove a PCI device ([`PhysdevManagePci`]).
pub const PHYSDEVOP_MANAGE_PCI_REMOVE: u32 = 16;
/// Register the PIRQ EOI bitmap page (v1).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u32 = 17;
/// Restore MSI state of a device ([`PhysdevManagePci`] layout).
pub const PHYSDEVOP_RESTORE_MSI: u32 = 19;
/// Report a PCI device with extended info.
pub const PHYSDEVOP_MANAGE_PCI_ADD_EXT: u32 = 20;
/// Set up a GSI's trigger and polarity ([`PhysdevSetupGsi`]).
pub const PHYSDEVOP_SETUP_GSI: u32 = 21;
/// Get a free PIRQ number ([`PhysdevGetFreePirq`]).
pub const PHYSDEVOP_GET_FREE_PIRQ: u32 = 23;
/// Report an MMCFG region.
pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u32 = 24;
/// Report a PCI device (segment aware).
pub const PHYSDEVOP_PCI_DEVICE_ADD: u32 = 25;
/// Remove a PCI device ([`PhysdevPciDevice`]).
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u32 = 26;
/// Restore MSI state ([`PhysdevPciDevice`]).
pub const PHYSDEVOP_RESTORE_MSI_EXT: u32 = 27;
/// Register the PIRQ EOI bitmap page (v2) ([`PhysdevPirqEoiGmfn`]).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u32 = 28;
/// Debug-port operations.
pub const PHYSDEVOP_DBGP_OP: u32 = 29;
/// Prepare MSI-X ([`PhysdevPciDevice`]).
pub const PHYSDEVOP_PREPARE_MSIX: u32 = 30;
/// Release MSI-X ([`PhysdevPciDevice`]).
pub const PHYSDEVOP_RELEASE_MSIX: u32 = 31;
/// Reset a PCI device.
pub const PHYSDEVOP_PCI_DEVICE_RESET: u32 = 32;

/// `PhysdevIrqStatusQuery::flags`: the IRQ needs `PHYSDEVOP_eoi`.
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
/// `flags`: the IRQ is shared with other domains.
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `PhysdevMapPirq::kind`: MSI.
pub const MAP_PIRQ_TYPE_MSI: i32 = 0;
/// `kind`: GSI.
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
/// `kind`: unknown.
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 2;
/// `kind`: MSI with PCI segment.
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 3;
/// `kind`: multi-vector MSI.
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 4;

/// `PHYSDEVOP_set_iopl` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevSetIopl {
    /// IN: IOPL 0..=3 (3 = all ports the domain may access).
    pub iopl: u32,
}

/// `PHYSDEVOP_set_iobitmap` (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevSetIobitmap {
    /// IN: guest handle of the bitmap (a clear bit allows the port, as in a TSS bitmap). The
    /// hypervisor keeps reading it while installed and, like the CPU with a TSS bitmap, reads
    /// 2 bytes at a time: possibly one byte past `nr_ports / 8`.
    pub bitmap: u64,
    /// IN: ports covered by the bitmap.
    pub nr_ports: u32,
    /// Padding.
    pub _pad: u32,
}

/// `PHYSDEVOP_eoi` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevEoi {
    /// IN: PIRQ.
    pub irq: u32,
}

/// `PHYSDEVOP_irq_status_query` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevIrqStatusQuery {
    /// IN: IRQ.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}

/// `PHYSDEVOP_pirq_eoi_gmfn_v2` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevPirqEoiGmfn {
    /// IN: frame of the EOI bitmap page.
    pub gmfn: u64,
}

/// `PHYSDEVOP_apic_read` / `apic_write` (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevApic {
    /// IN: IO-APIC physical base.
    pub apic_physbase: u64,
    /// IN: register.
    pub reg: u32,
    /// IN (write) / OUT (read): value.
    pub value: u32,
}

/// `PHYSDEVOP_alloc_irq_vector` / `free_irq_vector` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevIrq {
    /// IN: IRQ.
    pub irq: u32,
    /// IN/OUT: vector.
    pub vector: u32,
}

/// `PHYSDEVOP_map_pirq` (40 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevMapPirq {
    /// IN: domain.
    pub domid: DomId,
    /// Padding.
    pub _pad0: u16,
    /// IN: `MAP_PIRQ_TYPE_*` (C field `type`).
    pub kind: i32,
    /// IN: GSI or MSI index.
    pub index: i32,
    /// IN/OUT: PIRQ (-1 = allocate).
    pub pirq: i32,
    /// IN: PCI bus (segment in the high 16 bits for `MSI_SEG`/`MULTI_MSI`).
    pub bus: i32,
    /// IN: PCI devfn.
    pub devfn: i32,
    /// IN: MSI-X entry (OUT: vector count for `MULTI_MSI`).
    pub entry_nr: i32,
    /// Padding.
    pub _pad1: u32,
    /// IN: MSI-X table base.
    pub table_base: u64,
}

/// `PHYSDEVOP_unmap_pirq` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevUnmapPirq {
    /// IN: domain.
    pub domid: DomId,
    /// Padding.
    pub _pad: u16,
    /// IN: PIRQ.
    pub pirq: i32,
}

/// `PHYSDEVOP_manage_pci_add` / `remove`, `restore_msi` (2 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevManagePci {
    /// IN: bus.
    pub bus: u8,
    /// IN: devfn.
    pub devfn: u8,
}

/// `PHYSDEVOP_setup_gsi` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevSetupGsi {
    /// IN: GSI.
    pub gsi: i32,
    /// IN: trigger mode.
    pub triggering: u8,
    /// IN: polarity.
    pub polarity: u8,
    /// Padding.
    pub _pad: u16,
}

/// `PHYSDEVOP_get_free_pirq` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevGetFreePirq {
    /// IN: `MAP_PIRQ_TYPE_GSI` or `_MSI` (C field `type`).
    pub kind: i32,
    /// OUT: PIRQ.
    pub pirq: u32,
}

/// A PCI device address, used by several ops (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PhysdevPciDevice {
    /// IN: segment.
    pub seg: u16,
    /// IN: bus.
    pub bus: u8,
    /// IN: devfn.
    pub devfn: u8,
}

crate::assert_layout!(PhysdevSetIopl, size = 4, iopl = 0);
crate::assert_layout!(PhysdevSetIobitmap, size = 16, bitmap = 0, nr_ports = 8);
crate::assert_layout!(PhysdevEoi, size = 4, irq = 0);
crate::assert_layout!(PhysdevIrqStatusQuery, size = 8, irq = 0, flags = 4);
crate::assert_layout!(PhysdevPirqEoiGmfn, size = 8, gmfn = 0);
crate::assert_layout!(PhysdevApic, size = 16, apic_physbase = 0, reg = 8, value = 12);
crate::assert_layout!(PhysdevIrq, size = 8, irq = 0, vector = 4);
crate::assert_layout!(
    PhysdevMapPirq,
    size = 40,
    domid = 0,
    kind = 4,
    index = 8,
    pirq = 12,
    bus = 16,
    devfn = 20,
    entry_nr = 24,
    table_base = 32
);
crate::assert_layout!(PhysdevUnmapPirq, size = 8, domid = 0, pirq = 4);
crate::assert_layout!(PhysdevManagePci, size = 2, bus = 0, devfn = 1);
crate::assert_layout!(PhysdevSetupGsi, size = 8, gsi = 0, triggering = 4, polarity = 5);
crate::assert_layout!(PhysdevGetFreePirq, size = 8, kind = 0, pirq = 4);
crate::assert_layout!(PhysdevPciDevice, size = 4, seg = 0, bus = 2, devfn = 3);
