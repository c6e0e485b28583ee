//! The kernel heap: a fixed arena in .bss handed to a linked-list allocator.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

const HEAP_SIZE: usize = 2 << 20;

#[repr(align(4096))]
struct Arena(core::cell::UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: the arena is handed to the allocator once, which serialises all access.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(core::cell::UnsafeCell::new([0; HEAP_SIZE]));

/// Gives the allocator its arena. Called once at boot.
pub fn init() {
    // SAFETY: the arena is a static used for nothing else; init runs once before any
    // allocation.
    unsafe { HEAP.lock().init(ARENA.0.get().cast::<u8>(), HEAP_SIZE) };
}

/// Bytes in use and free.
pub fn stats() -> (usize, usize) {
    let h = HEAP.lock();
    (h.used(), h.free())
}
