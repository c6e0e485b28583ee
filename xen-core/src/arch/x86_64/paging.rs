//! The hypervisor's own page tables, built once at boot, and the few paging operations the
//! rest of the hypervisor needs (CR3 switches and TLB flushes).
//!
//! Every one of the 16 reserved L4 slots gets its L3 table here, even the unused ones, so the
//! 16 L4 entries never change after boot and can be copied into each guest L4 at validation.
//! The image is mapped with 4 KiB pages and W^X (text read-execute, rodata read-only, data
//! read-write no-execute); the direct map and the M2P use 2 MiB pages. Only the M2P slot is
//! user-accessible, read-only, so ring-3 guests can read it as Xen's ABI promises.

use core::sync::atomic::{AtomicU32, Ordering};

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

use super::layout::{
    APIC_PHYS, DIRECTMAP_BASE, FIXMAP_APIC, FIXMAP_IOAPIC, IOAPIC_PHYS, M2P_BASE, VOFF, XEN_L4_END,
    XEN_L4_FIRST,
};
use crate::boot::memmap::FreeRanges;

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const G: u64 = 1 << 8;
const NX: u64 = 1 << 63;
const TABLE: u64 = P | RW;
const TWO_MIB: u64 = 2 << 20;
/// The boot page tables map physical 0..1 GiB at `VOFF`; tables built here must lie below.
const BOOT_MAPPED: u64 = 1 << 30;

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __image_start: u8;
    static __image_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Linker-script symbols bracketing the image's parts (virtual addresses).
pub fn image_bounds() -> (u64, u64) {
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe { (sym(&__image_start), sym(&__image_end)) }
}

/// Physical address of an image virtual address.
pub fn image_phys(va: u64) -> u64 {
    va - VOFF
}

/// Builds tables in memory reached through the boot map (`VOFF + phys`).
struct Builder<'a> {
    free: &'a mut FreeRanges,
}

impl Builder<'_> {
    fn alloc_table(&mut self) -> u64 {
        let pa =
            self.free.take(4096, 4096, BOOT_MAPPED).expect("no memory below 1 GiB for page tables");
        // SAFETY: `pa` was just taken from free RAM below 1 GiB, which the boot tables map
        // writable at VOFF + pa; nothing else refers to it.
        unsafe { core::ptr::write_bytes((VOFF + pa) as *mut u8, 0, 4096) };
        pa
    }

    fn entry(&self, table: u64, index: usize) -> *mut u64 {
        (VOFF + table + index as u64 * 8) as *mut u64
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a table this builder allocated below 1 GiB (mapped at VOFF).
        unsafe { self.entry(table, index).read() }
    }

    fn write(&self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; the tables are not yet live, so no TLB maintenance is needed.
        unsafe { self.entry(table, index).write(value) }
    }

    /// The next-level table under `table[index]`, created if absent.
    fn child(&mut self, table: u64, index: usize, flags: u64) -> u64 {
        let e = self.read(table, index);
        if e & P != 0 {
            return e & 0x000F_FFFF_FFFF_F000;
        }
        let t = self.alloc_table();
        self.write(table, index, t | flags);
        t
    }

    /// Maps `[va, va + len)` to `[pa, ...)` with 2 MiB pages; `l4` must hold the slot's L3.
    fn map_2m(&mut self, l4: u64, va: u64, pa: u64, len: u64, flags: u64, upper: u64) {
        for off in (0..len).step_by(TWO_MIB as usize) {
            let v = va + off;
            let l3 = self.child(l4, ((v >> 39) & 511) as usize, upper);
            let l2 = self.child(l3, ((v >> 30) & 511) as usize, upper);
            self.write(l2, ((v >> 21) & 511) as usize, (pa + off) | flags | PS);
        }
    }

    /// Maps one 4 KiB page.
    fn map_4k(&mut self, l4: u64, va: u64, pa: u64, flags: u64) {
        let l3 = self.child(l4, ((va >> 39) & 511) as usize, TABLE);
        let l2 = self.child(l3, ((va >> 30) & 511) as usize, TABLE);
        let l1 = self.child(l2, ((va >> 21) & 511) as usize, TABLE);
        self.write(l1, ((va >> 12) & 511) as usize, pa | flags);
    }
}

/// The tables built at boot.
pub struct HvTables {
    /// Physical address of the hypervisor's own L4 (used when no guest runs).
    pub idle_l4: u64,
    /// Entries for L4 slots 256..272, copied into every guest L4.
    pub xen_l4: [u64; 16],
}

/// Builds the hypervisor's page tables: the image (W^X), a direct map of `[0, ram_end)` and
/// the M2P table at `m2p_pa` (`m2p_len` bytes, 2 MiB aligned) mapped read-only for guests.
pub fn build(free: &mut FreeRanges, ram_end: u64, m2p_pa: u64, m2p_len: u64) -> HvTables {
    let mut b = Builder { free };
    let l4 = b.alloc_table();
    for slot in XEN_L4_FIRST..XEN_L4_END {
        // The M2P slot is reachable from ring 3 (read-only below); the others are not.
        let flags = if slot == ((M2P_BASE >> 39) & 511) as usize { TABLE | US } else { TABLE };
        b.child(l4, slot, flags);
    }
    // SAFETY: only addresses of linker symbols are taken.
    let (text, text_end, ro, ro_end, start, end) = unsafe {
        (
            sym(&__text_start),
            sym(&__text_end),
            sym(&__rodata_start),
            sym(&__rodata_end),
            sym(&__image_start),
            sym(&__image_end),
        )
    };
    for va in (start..end).step_by(4096) {
        let flags = if (text & !0xFFF..text_end).contains(&va) {
            P | G
        } else if (ro..ro_end).contains(&va) {
            P | G | NX
        } else {
            P | RW | G | NX
        };
        b.map_4k(l4, va, image_phys(va), flags);
    }
    let ram_end = ram_end.div_ceil(TWO_MIB) * TWO_MIB;
    b.map_2m(l4, DIRECTMAP_BASE, 0, ram_end, P | RW | G | NX, TABLE);
    b.map_2m(
        l4,
        M2P_BASE,
        m2p_pa,
        m2p_len.div_ceil(TWO_MIB) * TWO_MIB,
        P | US | G | NX,
        TABLE | US,
    );
    b.map_4k(l4, FIXMAP_APIC, APIC_PHYS, P | RW | PCD | PWT | G | NX);
    b.map_4k(l4, FIXMAP_IOAPIC, IOAPIC_PHYS, P | RW | PCD | PWT | G | NX);
    let mut xen_l4 = [0u64; 16];
    for (i, e) in xen_l4.iter_mut().enumerate() {
        *e = b.read(l4, XEN_L4_FIRST + i);
    }
    HvTables { idle_l4: l4, xen_l4 }
}

static IDLE_L4: spin::Once<u64> = spin::Once::new();

/// Records the hypervisor's own L4 (once, at boot, when its tables are live).
pub fn set_idle_l4(l4: u64) {
    IDLE_L4.call_once(|| l4);
}

/// The hypervisor's own L4 (used while no guest runs).
pub fn idle_l4() -> u64 {
    *IDLE_L4.get().expect("set at boot")
}

/// Loads `l4` (physical address) into CR3.
pub fn load_cr3(l4: u64) {
    let frame = PhysFrame::containing_address(PhysAddr::new(l4));
    // SAFETY: every L4 loaded here (the idle table or a validated guest L4) carries the
    // hypervisor's slots, so the code, stack and data in use stay mapped across the switch.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    // Without PCIDs a CR3 load drops every non-global translation, and guest entries are
    // never global: it is a full flush of every guest mapping.
    tick_flush_clock();
}

/// Physical address of the current L4.
pub fn current_cr3() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Flushes all non-global TLB entries of this CPU.
pub fn flush_tlb_local() {
    x86_64::instructions::tlb::flush_all();
    tick_flush_clock();
}

/// The TLB-flush clock (the rule is `mm::tlb`'s): ticked by every full flush of any CPU.
static FLUSH_CLOCK: AtomicU32 = AtomicU32::new(0);
/// The clock's value at this CPU's last full flush (one CPU today; one per CPU with SMP).
static CPU0_FLUSHED_AT: AtomicU32 = AtomicU32::new(0);

fn tick_flush_clock() {
    let now = FLUSH_CLOCK.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    CPU0_FLUSHED_AT.store(now, Ordering::Release);
}

/// The flush clock now.
pub fn flush_clock() -> u32 {
    FLUSH_CLOCK.load(Ordering::Acquire)
}

/// The clock's value at this CPU's last full flush.
pub fn last_flush() -> u32 {
    CPU0_FLUSHED_AT.load(Ordering::Acquire)
}

/// Flushes one page's translation.
pub fn invlpg(va: u64) {
    if let Ok(va) = x86_64::VirtAddr::try_new(va) {
        x86_64::instructions::tlb::flush(va);
    }
}
