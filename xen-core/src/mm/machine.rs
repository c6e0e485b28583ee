//! The hypervisor's hold on machine memory: physical memory reached through the direct map,
//! the one global [`Mm`] (frame table, M2P, accounting) behind a lock, and access to frames
//! by machine frame number for the page-table validator, the domain builder and the memory
//! the hypervisor shares with guests (shared_info, vcpu_info, grant tables).
//!
//! Guest frames are shared with guests that may write them at any moment, so they are read
//! and written here only with volatile or atomic accesses, by value, never through plain
//! references.

use core::sync::atomic::{AtomicBool, Ordering};

use hypercall_abi::{Errno, Mfn};
use spin::Mutex;

use super::tlb::{Tlb, flushed_since};
use super::types::{PTE_PRESENT, pte_mfn};
use super::{FrameInfo, Mm, PageMem, PageType};
use crate::arch::layout::{DIRECTMAP_BASE, VOFF};
use crate::arch::paging;
use crate::arch::uaccess;
use crate::boot::multiboot::PhysRead;

/// The frame table and friends. Lock order: take this after any domain lock, never before.
pub static MM: Mutex<Option<Mm<'static>>> = Mutex::new(None);

static DIRECT_MAP_UP: AtomicBool = AtomicBool::new(false);

/// Virtual address of physical address `pa`: through the boot map until the direct map is up.
pub fn phys_to_virt(pa: u64) -> u64 {
    if DIRECT_MAP_UP.load(Ordering::Relaxed) { DIRECTMAP_BASE + pa } else { VOFF + pa }
}

/// Records that the hypervisor's own tables (with the direct map) are live.
pub fn direct_map_is_up() {
    DIRECT_MAP_UP.store(true, Ordering::Relaxed);
}

/// Physical memory, for the multiboot parser: below 1 GiB before the direct map is up.
pub struct BootPhys;

impl PhysRead for BootPhys {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else { return false };
        if end > 1 << 30 {
            return false;
        }
        // SAFETY: [addr, end) is below 1 GiB, which both the boot map and the direct map cover;
        // the loader's data there is not written by anyone while we read it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(addr) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
}

/// Creates the frame table over `[ft_pa, ...)` and the M2P over `[m2p_pa, ...)`, both
/// `nr_frames` entries, taken from free RAM for this alone.
pub fn init_mm(ft_pa: u64, m2p_pa: u64, nr_frames: u64, xen_l4: [u64; 16]) {
    // SAFETY: both ranges were taken from free RAM for these tables alone, are mapped writable
    // through the direct map, are suitably aligned (page aligned), and live forever; `Mm::new`
    // initialises every entry before use.
    let (frames, m2p) = unsafe {
        (
            core::slice::from_raw_parts_mut(
                phys_to_virt(ft_pa) as *mut FrameInfo,
                nr_frames as usize,
            ),
            core::slice::from_raw_parts_mut(phys_to_virt(m2p_pa) as *mut u64, nr_frames as usize),
        )
    };
    let mut mm = Mm::new(frames, m2p, xen_l4, &CpuTlbs);
    for mfn in crate::arch::layout::HYPERVISOR_DEVICE_FRAMES {
        mm.deny_io(Mfn(mfn));
    }
    *MM.lock() = Some(mm);
}

/// Runs `f` on the global [`Mm`] with its lock held.
pub fn with_mm<R>(f: impl FnOnce(&mut Mm<'static>) -> R) -> R {
    f(MM.lock().as_mut().expect("mm initialised at boot"))
}

/// Scrubs up to `n` dirty free frames (the idle loop's work); how many it did.
pub fn scrub_some(n: usize) -> usize {
    with_mm(|mm| (0..n).take_while(|_| mm.scrub_one(zero_frame)).count())
}

fn frame_ptr(mfn: Mfn) -> *mut u8 {
    phys_to_virt(mfn.0 << 12) as *mut u8
}

/// Whether `mfn` is RAM the direct map covers (i.e. the frame table knows it).
fn is_ram(mfn: Mfn) -> bool {
    MM_FRAMES.load(Ordering::Relaxed) > mfn.0
}

static MM_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records how many frames the direct map covers.
pub fn set_ram_frames(n: u64) {
    MM_FRAMES.store(n, Ordering::Relaxed);
}

/// Copies `bytes` into frame `mfn` at `offset`. The frame must be RAM; the range must fit.
pub fn write_frame(mfn: Mfn, offset: usize, bytes: &[u8]) {
    assert!(is_ram(mfn) && offset + bytes.len() <= 4096);
    let dst = frame_ptr(mfn).wrapping_add(offset);
    // SAFETY: the frame is RAM covered by the direct map (checked), the range stays inside it;
    // the frame may be shared with a guest, so the copy makes no assumption about its contents.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
}

/// Copies from frame `mfn` at `offset` into `buf`.
pub fn read_frame(mfn: Mfn, offset: usize, buf: &mut [u8]) {
    assert!(is_ram(mfn) && offset + buf.len() <= 4096);
    let src = frame_ptr(mfn).wrapping_add(offset) as *const u8;
    // SAFETY: as in `write_frame`; the bytes are copied out once, by value.
    unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
}

/// The L1 table and index that map `va` in the L4 `root`, if that table is a live (validated)
/// L1. The walk reads the guest's validated tables, which it cannot write. `root` must be a
/// live L4 itself (a domain made by domctl has none yet: its vCPU's base table is frame 0),
/// and then every entry the walk follows names a live table of the next level.
pub fn live_l1(root: Mfn, va: u64) -> Result<(Mfn, usize), Errno> {
    if !uaccess::is_guest_range(va, 1) {
        return Err(Errno::EINVAL);
    }
    let live_l4 =
        with_mm(|mm| mm.frame(root).is_some_and(|f| f.ptype == PageType::L4 && f.type_count > 0));
    if !live_l4 {
        return Err(Errno::EINVAL);
    }
    let mut table = root;
    for level in (2..=4u32).rev() {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        let e = PageMem::read_pte(&DirectPageMem, table, index);
        if e & PTE_PRESENT == 0 {
            return Err(Errno::EINVAL);
        }
        table = pte_mfn(e);
    }
    let live =
        with_mm(|mm| mm.frame(table).is_some_and(|f| f.ptype == PageType::L1 && f.type_count > 0));
    if live { Ok((table, ((va >> 12) & 511) as usize)) } else { Err(Errno::EINVAL) }
}

/// Copies `len` bytes from frame `src` at `so` to frame `dst` at `dof` (GNTTABOP_copy). Both
/// must be RAM and the ranges fit; the same frame may be both (then it is a memmove). Runs of
/// whole 32-byte blocks go through an unrolled loop of 64-bit moves, for the reason given at
/// [`zero_frame`].
pub fn copy_frame_range(src: Mfn, so: usize, dst: Mfn, dof: usize, len: usize) {
    assert!(is_ram(src) && is_ram(dst) && so + len <= 4096 && dof + len <= 4096);
    let s = frame_ptr(src).wrapping_add(so).cast_const();
    let d = frame_ptr(dst).wrapping_add(dof);
    if src == dst {
        // SAFETY: both ranges are inside one RAM frame of the direct map (checked); `copy`
        // allows them to overlap.
        unsafe { core::ptr::copy(s, d, len) };
        return;
    }
    let blocks = if (so | dof).is_multiple_of(8) { len / 32 } else { 0 };
    if blocks > 0 {
        // SAFETY: distinct RAM frames of the direct map; the loop reads and writes exactly
        // `blocks * 32 <= len` bytes from the checked starts, 8-aligned.
        unsafe {
            core::arch::asm!(
                "2:",
                "mov {a}, [{s}]",
                "mov {b}, [{s} + 8]",
                "mov [{d}], {a}",
                "mov [{d} + 8], {b}",
                "mov {a}, [{s} + 16]",
                "mov {b}, [{s} + 24]",
                "mov [{d} + 16], {a}",
                "mov [{d} + 24], {b}",
                "add {s}, 32",
                "add {d}, 32",
                "dec {n}",
                "jnz 2b",
                s = inout(reg) s => _,
                d = inout(reg) d => _,
                n = inout(reg) blocks => _,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack)
            );
        }
    }
    let done = blocks * 32;
    if done < len {
        // SAFETY: the tail of the same checked ranges, in distinct frames.
        unsafe { core::ptr::copy_nonoverlapping(s.add(done), d.add(done), len - done) };
    }
}

/// Zeroes frame `mfn`. An unrolled loop of 64-bit stores rather than `rep stosq`: under
/// QEMU's TCG a `rep` string instruction costs a dispatch per iteration, and zeroing is most
/// of the time it takes to build a domain (see docs/BENCHMARKS.md).
pub fn zero_frame(mfn: Mfn) {
    assert!(is_ram(mfn));
    // SAFETY: the frame is RAM covered by the direct map, 4 KiB aligned, and owned by the
    // caller's purpose; the loop writes exactly 4096 bytes from its start.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov [{p}], {z}",
            "mov [{p} + 8], {z}",
            "mov [{p} + 16], {z}",
            "mov [{p} + 24], {z}",
            "mov [{p} + 32], {z}",
            "mov [{p} + 40], {z}",
            "mov [{p} + 48], {z}",
            "mov [{p} + 56], {z}",
            "add {p}, 64",
            "dec {n}",
            "jnz 2b",
            p = inout(reg) frame_ptr(mfn) => _,
            n = inout(reg) 64u64 => _,
            z = in(reg) 0u64,
            options(nostack)
        );
    }
}

/// A pointer to the 64-bit word `index` of frame `mfn`, for atomic access to memory shared
/// with a guest (shared_info bitmaps). Valid for the hypervisor's lifetime (the direct map).
pub fn frame_word(mfn: Mfn, index: usize) -> &'static core::sync::atomic::AtomicU64 {
    assert!(is_ram(mfn) && index < 512);
    // SAFETY: the word is inside a RAM frame mapped by the direct map for ever, 8-aligned;
    // AtomicU64 tolerates concurrent writes by a guest, and no non-atomic reference to this
    // memory is ever made by the hypervisor.
    unsafe { &*(frame_ptr(mfn).cast::<core::sync::atomic::AtomicU64>().add(index)) }
}

/// A byte of frame `mfn`, for atomic access to memory shared with a guest (vcpu_info flags).
pub fn frame_byte(mfn: Mfn, offset: usize) -> &'static core::sync::atomic::AtomicU8 {
    assert!(is_ram(mfn) && offset < 4096);
    // SAFETY: inside a RAM frame mapped by the direct map for ever; AtomicU8 tolerates
    // concurrent guest writes, and the hypervisor makes no non-atomic reference to it.
    unsafe { &*(frame_ptr(mfn).add(offset).cast::<core::sync::atomic::AtomicU8>()) }
}

/// Set once the boot modules' memory has gone back to the free pool.
static MODULES_RELEASED: AtomicBool = AtomicBool::new(false);
/// Boot modules kept after the others went back (`[start, end)` byte ranges): the kernels and
/// ramdisks of boot domains that are rebuilt when they reboot. Written once, before
/// `MODULES_RELEASED` is set.
static KEPT_MODULES: spin::Once<alloc::vec::Vec<(u64, u64)>> = spin::Once::new();

/// The bytes of a boot module, which the hypervisor reserved at boot and nobody writes: every
/// module until [`release_modules`], then the ones it kept.
pub fn module_bytes(start: u64, end: u64) -> &'static [u8] {
    assert!(end >= start && end <= MM_FRAMES.load(Ordering::Relaxed) * 4096);
    let kept =
        || KEPT_MODULES.get().is_some_and(|k| k.iter().any(|&(s, e)| s <= start && end <= e));
    assert!(
        !MODULES_RELEASED.load(Ordering::Acquire) || kept(),
        "boot module read after its release"
    );
    // SAFETY: [start, end) is RAM covered by the direct map (checked), reserved for a module
    // at boot and never written: before `release_modules` every module is reserved, after it
    // only the kept ones are read (checked above), which stay reserved for good.
    unsafe { core::slice::from_raw_parts(phys_to_virt(start) as *const u8, (end - start) as usize) }
}

/// Gives the boot modules' frames (`[start, end)` byte ranges) back to the free pool, but for
/// those `keep` names (whole ranges of modules still needed). Frames are rounded outward, so
/// two modules may share one: the ranges are merged first, or that frame would be freed
/// twice, and a frame a kept module touches stays.
pub fn release_modules(modules: impl Iterator<Item = (u64, u64)>, keep: &[(u64, u64)]) {
    KEPT_MODULES.call_once(|| keep.to_vec());
    MODULES_RELEASED.store(true, Ordering::Release);
    let touches_kept = |s: u64, e: u64| {
        keep.iter().any(|&(ks, ke)| s < ke.div_ceil(4096) * 4096 && (ks / 4096) * 4096 < e)
    };
    let mut ranges: alloc::vec::Vec<(u64, u64)> = modules
        .filter(|(s, e)| e > s)
        .map(|(s, e)| (s / 4096 * 4096, e.div_ceil(4096) * 4096))
        .filter(|&(s, e)| !touches_kept(s, e))
        .map(|(s, e)| (s / 4096, e / 4096))
        .collect();
    ranges.sort_unstable();
    let mut merged: alloc::vec::Vec<(u64, u64)> = alloc::vec::Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    with_mm(|mm| merged.into_iter().for_each(|(s, e)| mm.add_free(Mfn(s), Mfn(e))));
}

/// Page-table frames by machine frame number, for the validator.
pub struct DirectPageMem;

impl PageMem for DirectPageMem {
    fn read_pte(&self, table: Mfn, index: usize) -> u64 {
        assert!(is_ram(table) && index < 512);
        // SAFETY: in-bounds word of a RAM frame mapped by the direct map; volatile because the
        // frame may be a guest's (read once, by value).
        unsafe { frame_ptr(table).cast::<u64>().add(index).read_volatile() }
    }

    fn write_pte(&mut self, table: Mfn, index: usize, value: u64) {
        assert!(is_ram(table) && index < 512);
        // SAFETY: as in `read_pte`; the caller (the validator) owns the decision to write.
        unsafe { frame_ptr(table).cast::<u64>().add(index).write_volatile(value) }
    }
}

/// This machine's TLBs for the frame table's TLB rule: the flush clock the paging layer ticks
/// on every full flush. One CPU: a stale stamp means flushing this CPU.
pub struct CpuTlbs;

impl Tlb for CpuTlbs {
    fn clock(&self) -> u32 {
        paging::flush_clock()
    }

    fn flush_stale(&self, stamp: u32) {
        if !flushed_since(paging::last_flush(), stamp) {
            paging::flush_tlb_local();
        }
    }
}

/// The loader's memory map as boot handed it over, for dom0 (`XENMEM_machine_memory_map`).
pub static MACHINE_MEMORY_MAP: spin::Once<alloc::vec::Vec<hypercall_abi::memory::E820Entry>> =
    spin::Once::new();

/// The machine's memory map from the loader (empty before boot has read it).
pub fn machine_memory_map() -> &'static [hypercall_abi::memory::E820Entry] {
    MACHINE_MEMORY_MAP.get().map_or(&[], alloc::vec::Vec::as_slice)
}
