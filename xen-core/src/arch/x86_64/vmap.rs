//! Run-time mappings of hypervisor virtual memory: single 4 KiB pages mapped into the windows
//! `layout` reserves for them (the heap's growth, scratch buffers). Everything else the
//! hypervisor maps is fixed at boot.
//!
//! The windows live in hypervisor L4 slots, whose L3 tables exist from boot and are shared by
//! every address space (each guest L4 copies the slot entries), so a page mapped here is seen
//! by every CPU in every address space. The L2 and L1 tables below are created on demand from
//! frames the caller supplies, and kept. Pages are global and never executable.

use super::layout::{DIRECTMAP_BASE, HEAP_WINDOW, SCRATCH_SLOT, SCRATCH_SLOTS, SCRATCH_WINDOW};
use super::paging::{idle_l4, invlpg};

const P: u64 = 1;
const RW: u64 = 2;
const G: u64 = 1 << 8;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;

/// Why a page could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The address is not in a run-time window, or not page aligned.
    NotAWindow,
    /// A page-table frame was needed and none was given.
    NoTable,
    /// Something is mapped there already.
    Busy,
}

fn in_window(va: u64) -> bool {
    let heap = (HEAP_WINDOW..HEAP_WINDOW + super::layout::HEAP_WINDOW_SIZE).contains(&va);
    let scratch =
        (SCRATCH_WINDOW..SCRATCH_WINDOW + SCRATCH_SLOT * SCRATCH_SLOTS as u64).contains(&va);
    va.is_multiple_of(4096) && (heap || scratch)
}

fn entry(table_pa: u64, index: u64) -> *mut u64 {
    (DIRECTMAP_BASE + table_pa + index * 8) as *mut u64
}

fn read(table_pa: u64, index: u64) -> u64 {
    // SAFETY: `table_pa` is one of the hypervisor's own page tables (the idle L4, a slot's L3
    // from boot, or a table made here), which the direct map covers; index < 512.
    unsafe { entry(table_pa, index).read_volatile() }
}

fn write(table_pa: u64, index: u64, value: u64) {
    // SAFETY: as in `read`; only the hypervisor writes its own tables, with interrupts off.
    unsafe { entry(table_pa, index).write_volatile(value) }
}

/// The table under `table[index]`, made from `new_table()` (zeroed here) if there is none.
fn child(
    table_pa: u64,
    index: u64,
    new_table: &mut dyn FnMut() -> Option<u64>,
) -> Result<u64, MapError> {
    let e = read(table_pa, index);
    if e & P != 0 {
        return Ok(e & ADDR);
    }
    let t = new_table().ok_or(MapError::NoTable)?;
    // SAFETY: the caller gives a free RAM frame for this table alone; the direct map covers it.
    unsafe { core::ptr::write_bytes((DIRECTMAP_BASE + t) as *mut u8, 0, 4096) };
    write(table_pa, index, t | P | RW);
    Ok(t)
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 511
}

/// Maps the page at `va` (in a run-time window) to physical `pa`, read-write. Tables it needs
/// come from `new_table` (physical addresses of free frames).
pub fn map(va: u64, pa: u64, new_table: &mut dyn FnMut() -> Option<u64>) -> Result<(), MapError> {
    if !in_window(va) {
        return Err(MapError::NotAWindow);
    }
    let l3 = read(idle_l4(), index(va, 4)) & ADDR;
    let l2 = child(l3, index(va, 3), new_table)?;
    let l1 = child(l2, index(va, 2), new_table)?;
    if read(l1, index(va, 1)) & P != 0 {
        return Err(MapError::Busy);
    }
    // Not present before: no TLB can hold a translation for it, nothing to flush.
    write(l1, index(va, 1), (pa & ADDR) | P | RW | G | NX);
    Ok(())
}

/// Unmaps the page at `va` and flushes its translation; returns the physical address it had.
pub fn unmap(va: u64) -> Option<u64> {
    if !in_window(va) {
        return None;
    }
    let l3 = read(idle_l4(), index(va, 4)) & ADDR;
    let l2 = read(l3, index(va, 3));
    if l2 & P == 0 {
        return None;
    }
    let l1 = read(l2 & ADDR, index(va, 2));
    if l1 & P == 0 {
        return None;
    }
    let pte = read(l1 & ADDR, index(va, 1));
    if pte & P == 0 {
        return None;
    }
    write(l1 & ADDR, index(va, 1), 0);
    // Global pages survive a CR3 load; invlpg drops them.
    invlpg(va);
    Some(pte & ADDR)
}
