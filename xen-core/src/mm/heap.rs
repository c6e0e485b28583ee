//! The hypervisor's heap (domains, vCPU contexts, event-channel and grant bookkeeping). Guest
//! memory is never on it.
//!
//! Three regions, tried in this order: the boot region (carved from RAM when the memory map
//! is known), then the growth window, then the early arena in the image (what boot needs
//! before the memory map is known). Frees go back to the region that holds the pointer.
//!
//! The heap is not a fixed size that many small domains could exhaust: when the first two are
//! full, the growth window takes more frames from the frame allocator and maps them after
//! what it has (`arch::vmap`), up to `HEAP_WINDOW_SIZE`. The allocator can be called with the
//! frame table's lock held (the frame table itself allocates), so it never waits for that
//! lock: if the lock is taken it draws on a small reserve of frames, refilled whenever it gets
//! the lock. What a guest can make the hypervisor allocate is bounded per domain and charged
//! to it (`domain::quota`), and those allocations are fallible: an allocation that fails is an
//! errno to that guest, never a panic.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use linked_list_allocator::LockedHeap;
use spin::Mutex;

use super::machine::{MM, phys_to_virt};
use crate::arch::layout::{HEAP_WINDOW, HEAP_WINDOW_SIZE};
use crate::arch::vmap;

struct Heaps {
    early: LockedHeap,
    boot: LockedHeap,
    grown: LockedHeap,
}

const EARLY_HEAP: usize = 256 * 1024;
/// Frames kept aside for growth while the frame table's lock is held.
const RESERVE_FRAMES: usize = 32;
/// The heap grows by at least this much at a time.
const GROW_MIN: u64 = 64 * 1024;

#[repr(align(4096))]
struct EarlyArena(core::cell::UnsafeCell<[u8; EARLY_HEAP]>);
// SAFETY: the arena is only ever handed to the early heap, which serialises access.
unsafe impl Sync for EarlyArena {}
static EARLY_ARENA: EarlyArena = EarlyArena(core::cell::UnsafeCell::new([0; EARLY_HEAP]));

#[global_allocator]
static HEAP: Heaps =
    Heaps { early: LockedHeap::empty(), boot: LockedHeap::empty(), grown: LockedHeap::empty() };

/// The growth window: how much of it is mapped, and the frames kept aside.
struct Growth {
    mapped: u64,
    reserve: [u64; RESERVE_FRAMES],
    reserved: usize,
}

static GROWTH: Mutex<Growth> =
    Mutex::new(Growth { mapped: 0, reserve: [0; RESERVE_FRAMES], reserved: 0 });
/// Bytes of the window mapped (for statistics, readable without the lock).
static GROWN_BYTES: AtomicU64 = AtomicU64::new(0);

fn in_early(ptr: *mut u8) -> bool {
    let start = EARLY_ARENA.0.get() as usize;
    (start..start + EARLY_HEAP).contains(&(ptr as usize))
}

fn in_window(ptr: *mut u8) -> bool {
    (HEAP_WINDOW..HEAP_WINDOW + HEAP_WINDOW_SIZE).contains(&(ptr as u64))
}

impl Growth {
    /// Takes frames from the frame allocator until the reserve is full.
    fn top_up(&mut self, mm: &mut super::Mm<'_>) {
        while self.reserved < RESERVE_FRAMES {
            let Some(f) = mm.alloc_xen_frame() else { break };
            self.reserve[self.reserved] = f.0 << 12;
            self.reserved += 1;
        }
    }

    /// A free frame's physical address: from the frame allocator if its lock is free (topping
    /// the reserve up on the way), else from the reserve.
    fn frame(&mut self) -> Option<u64> {
        if let Some(mut guard) = MM.try_lock()
            && let Some(mm) = guard.as_mut()
        {
            self.top_up(mm);
            if let Some(f) = mm.alloc_xen_frame() {
                return Some(f.0 << 12);
            }
        }
        self.reserved = self.reserved.checked_sub(1)?;
        Some(self.reserve[self.reserved])
    }

    /// Maps `bytes` more of the window (page granular); returns how much was mapped.
    fn grow(&mut self, bytes: u64) -> u64 {
        let mut done = 0;
        while done < bytes && self.mapped < HEAP_WINDOW_SIZE {
            let Some(pa) = self.frame() else { break };
            let va = HEAP_WINDOW + self.mapped;
            if vmap::map(va, pa, &mut || self.frame()).is_err() {
                break;
            }
            self.mapped += 4096;
            done += 4096;
        }
        GROWN_BYTES.store(self.mapped, Ordering::Relaxed);
        done
    }
}

impl Heaps {
    /// Grows the window by enough for `layout`, then allocates from it.
    fn grow_and_alloc(&self, layout: Layout) -> *mut u8 {
        let mut g = GROWTH.lock();
        let want = ((layout.size() + layout.align()) as u64).max(GROW_MIN).next_multiple_of(4096);
        let was = g.mapped;
        let got = g.grow(want);
        if got == 0 {
            return core::ptr::null_mut();
        }
        let mut heap = self.grown.lock();
        if was == 0 {
            // SAFETY: [HEAP_WINDOW, HEAP_WINDOW + got) was just mapped read-write to frames
            // taken for the heap alone, and stays mapped for the hypervisor's lifetime.
            unsafe { heap.init(HEAP_WINDOW as *mut u8, got as usize) };
        } else {
            // SAFETY: the window grows contiguously: the new pages follow the heap's end.
            unsafe { heap.extend(got as usize) };
        }
        heap.allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
}

// SAFETY: each region is a correct allocator over memory given to it alone; every pointer is
// returned to the region whose range contains it, which is the one that produced it.
unsafe impl GlobalAlloc for Heaps {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.boot.alloc(layout) };
        if !p.is_null() {
            return p;
        }
        // SAFETY: as above.
        let p = unsafe { self.grown.alloc(layout) };
        if !p.is_null() {
            return p;
        }
        let p = self.grow_and_alloc(layout);
        if !p.is_null() {
            return p;
        }
        // SAFETY: as above.
        unsafe { self.early.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the region whose range holds it, with this layout.
        unsafe {
            if in_early(ptr) {
                self.early.dealloc(ptr, layout)
            } else if in_window(ptr) {
                self.grown.dealloc(ptr, layout)
            } else {
                self.boot.dealloc(ptr, layout)
            }
        }
    }
}

/// Gives the early heap its arena. First thing at boot.
pub fn init_early_heap() {
    // SAFETY: the arena is a static used for nothing else, initialised once.
    unsafe { HEAP.early.lock().init(EARLY_ARENA.0.get().cast::<u8>(), EARLY_HEAP) };
}

/// Hands `[pa, pa + len)` (mapped, unused RAM) to the heap as its boot region.
pub fn init_heap(pa: u64, len: u64) {
    // SAFETY: the caller took this range from free RAM for the heap alone; it is mapped
    // writable through the direct map for the hypervisor's lifetime.
    unsafe { HEAP.boot.lock().init(phys_to_virt(pa) as *mut u8, len as usize) };
}

/// Fills the growth reserve once the frame allocator has memory (end of boot).
pub fn fill_reserve() {
    super::machine::with_mm(|mm| GROWTH.lock().top_up(mm));
}

/// Bytes of heap in use and free, and how much of it the growth window took at run time.
pub fn heap_stats() -> (usize, usize, u64) {
    let (e, b, g) = (HEAP.early.lock(), HEAP.boot.lock(), HEAP.grown.lock());
    (
        e.used() + b.used() + g.used(),
        e.free() + b.free() + g.free(),
        GROWN_BYTES.load(Ordering::Relaxed),
    )
}
