//! The hypervisor's heap (domains, vCPU contexts, event-channel and grant tables): a small
//! region in the image for what boot needs before the memory map is known, then the main
//! region carved from RAM. Frees go back to the region they came from. Guest memory is never
//! on it.

use linked_list_allocator::LockedHeap;

use super::machine::phys_to_virt;

/// The heap: a small region in the image for what boot needs before the memory map is
/// known, then the main region carved from RAM. Frees go back to the region they came from.
struct Heaps {
    early: LockedHeap,
    main: LockedHeap,
}

const EARLY_HEAP: usize = 256 * 1024;

#[repr(align(4096))]
struct EarlyArena(core::cell::UnsafeCell<[u8; EARLY_HEAP]>);
// SAFETY: the arena is only ever handed to the early heap, which serialises access.
unsafe impl Sync for EarlyArena {}
static EARLY_ARENA: EarlyArena = EarlyArena(core::cell::UnsafeCell::new([0; EARLY_HEAP]));

#[global_allocator]
static HEAP: Heaps = Heaps { early: LockedHeap::empty(), main: LockedHeap::empty() };

fn in_early(ptr: *mut u8) -> bool {
    let start = EARLY_ARENA.0.get() as usize;
    (start..start + EARLY_HEAP).contains(&(ptr as usize))
}

// SAFETY: both heaps are correct allocators; each pointer is returned to the heap whose
// arena contains it, which is the heap that produced it.
unsafe impl core::alloc::GlobalAlloc for Heaps {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.main.alloc(layout) };
        if !p.is_null() {
            return p;
        }
        // SAFETY: as above.
        unsafe { self.early.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: `ptr` came from the heap whose arena holds it, with this layout.
        unsafe {
            if in_early(ptr) {
                self.early.dealloc(ptr, layout)
            } else {
                self.main.dealloc(ptr, layout)
            }
        }
    }
}

/// Gives the early heap its arena. First thing at boot.
pub fn init_early_heap() {
    // SAFETY: the arena is a static used for nothing else, initialised once.
    unsafe { HEAP.early.lock().init(EARLY_ARENA.0.get().cast::<u8>(), EARLY_HEAP) };
}

/// Hands `[pa, pa + len)` (mapped, unused RAM) to the heap.
pub fn init_heap(pa: u64, len: u64) {
    // SAFETY: the caller took this range from free RAM for the heap alone; it is mapped
    // writable through the direct map for the hypervisor's lifetime.
    unsafe { HEAP.main.lock().init(phys_to_virt(pa) as *mut u8, len as usize) };
}

/// Bytes of heap in use and free.
pub fn heap_stats() -> (usize, usize) {
    let (e, m) = (HEAP.early.lock(), HEAP.main.lock());
    (e.used() + m.used(), e.free() + m.free())
}
