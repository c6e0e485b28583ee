//! The hypervisor's virtual address map. Everything lives in the 16 L4 slots Xen reserves
//! (256-271, `0xFFFF800000000000..0xFFFF880000000000`), which every guest L4 shares.
//!
//! | slot | range start | what |
//! |---|---|---|
//! | 256 | `0xFFFF_8000_0000_0000` | read-only M2P table, readable by guests (Xen's `RO_MPT_VIRT_START`) |
//! | 261 | `0xFFFF_82D0_8000_0000` | the hypervisor image (Xen's `XEN_VIRT_START`), physical = virtual - `VOFF` |
//! | 262 | `0xFFFF_8300_0000_0000` | direct map of all RAM (Xen's `DIRECTMAP_VIRT_START`) |
//! | 263 | `0xFFFF_8380_0000_0000` | fixed uncached mappings of device pages (local APIC, IOAPIC) |
//! | 264 | `0xFFFF_8400_0000_0000` | the heap's growth window, mapped page by page at run time |
//! | 265 | `0xFFFF_8480_0000_0000` | scratch buffers (large, temporary, virtually contiguous), mapped at run time |

/// Virtual minus physical address of the hypervisor image.
pub const VOFF: u64 = 0xFFFF_82D0_8000_0000;
/// Where the direct map of all physical memory starts.
pub const DIRECTMAP_BASE: u64 = 0xFFFF_8300_0000_0000;
/// Read-only machine-to-phys table, as Xen's guests expect it.
pub const M2P_BASE: u64 = 0xFFFF_8000_0000_0000;
/// First and one past the last L4 slot the hypervisor owns in every address space.
pub const XEN_L4_FIRST: usize = 256;
pub const XEN_L4_END: usize = 272;
/// Boot (and later per-CPU hypervisor) stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
/// Stacks for NMI, double fault and machine check: they must never run on a guest's stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;
/// Fixed uncached mappings of device pages (slot 263).
pub const FIXMAP_BASE: u64 = 0xFFFF_8380_0000_0000;
/// The local APIC's registers.
pub const FIXMAP_APIC: u64 = FIXMAP_BASE;
/// Physical address of the local APIC.
pub const APIC_PHYS: u64 = 0xFEE0_0000;
/// The IOAPIC's registers.
pub const FIXMAP_IOAPIC: u64 = FIXMAP_BASE + 0x1000;
/// Physical address of the (first) IOAPIC: the PC's standard place, where QEMU's is.
pub const IOAPIC_PHYS: u64 = 0xFEC0_0000;
/// Device pages the hypervisor drives itself: no guest may map them, dom0 included (Xen
/// denies dom0 the local APIC and IOAPIC pages the same way).
pub const HYPERVISOR_DEVICE_FRAMES: [u64; 2] = [APIC_PHYS >> 12, IOAPIC_PHYS >> 12];
/// Where the heap grows: frames taken at run time are mapped here one after the other, so the
/// heap stays one contiguous range however scattered its frames are (slot 264).
pub const HEAP_WINDOW: u64 = 0xFFFF_8400_0000_0000;
/// The most the heap's window can hold.
pub const HEAP_WINDOW_SIZE: u64 = 1 << 30;
/// Scratch buffers: large, temporary, virtually contiguous mappings of scattered frames, each
/// in its own `SCRATCH_SLOT`-sized slice of slot 265.
pub const SCRATCH_WINDOW: u64 = 0xFFFF_8480_0000_0000;
pub const SCRATCH_SLOT: u64 = 1 << 30;
pub const SCRATCH_SLOTS: usize = 64;
