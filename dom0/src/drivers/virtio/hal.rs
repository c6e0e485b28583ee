//! The `virtio-drivers` HAL for a Xen PV dom0: every address a device is given is a machine
//! address. Queues and other driver memory come from `dma::alloc` (dom0's own pages,
//! machine-contiguous); a caller's buffer is given to the device in place when its frames are
//! machine-contiguous, and bounced through a DMA buffer otherwise (copied in before the
//! device reads, out after it wrote, as swiotlb-xen does); BAR regions are mapped uncached
//! through `DOMID_IO` (`dma::map_mmio`), whole BARs at probe time. Bounces of more than a
//! page go through one pool of `BOUNCE_MAX` bytes set aside at start; drivers ask
//! [`can_share`] before queueing a buffer.

use alloc::collections::BTreeMap;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::drivers::dma::{self, DmaBuf};

/// The HAL (no state of its own: `dma` keeps it).
#[derive(Debug)]
pub struct XenHal;

/// Device memory mapped so far: (machine address, length, virtual address), whole BARs.
static MAPPED: spin::Mutex<alloc::vec::Vec<(u64, u64, u64)>> =
    spin::Mutex::new(alloc::vec::Vec::new());

/// Maps a device's memory BARs (`ranges`: machine address, length) before its transport is
/// made, so a mapping that fails is the device's log line and not a failure inside the crate
/// (whose `mmio_phys_to_virt` cannot fail).
pub fn map_bars(ranges: impl Iterator<Item = (u64, u64)>) -> bool {
    for (addr, len) in ranges {
        let Some(va) = dma::map_mmio(addr, len as usize) else { return false };
        MAPPED.lock().push((addr, len, va));
    }
    true
}

/// Where device memory `[paddr, paddr + size)` is mapped, if inside a BAR mapped by [`map_bars`].
pub fn mapped(paddr: u64, size: usize) -> Option<u64> {
    MAPPED.lock().iter().find_map(|&(a, l, va)| {
        (paddr >= a && paddr.checked_add(size as u64)? <= a + l).then(|| va + (paddr - a))
    })
}

/// The most a caller may hand a device in one buffer that is not machine-contiguous: what
/// the bounce pool holds.
pub const BOUNCE_MAX: usize = 64 * 1024;

/// The bounce buffer for multi-page buffers (taken at the first need; `None` until then).
static POOL: spin::Mutex<Option<(DmaBuf, bool)>> = spin::Mutex::new(None);

/// Sets the bounce pool aside (a machine-contiguous run of `BOUNCE_MAX` bytes); false if
/// dom0 has none.
pub fn reserve_bounce_pool() -> bool {
    let mut p = POOL.lock();
    if p.is_none() {
        *p = dma::alloc(BOUNCE_MAX / 4096).map(|b| (b, false));
    }
    p.is_some()
}

/// Whether a buffer can be handed to a device now: in place, or bounced through a single page
/// or the (free) pool. Drivers check this before queueing a buffer, so `share` never fails.
pub fn can_share(va: u64, len: usize) -> bool {
    len <= 4096
        || dma::machine_span(va, len).is_some()
        || (len <= BOUNCE_MAX && POOL.lock().as_ref().is_some_and(|(_, busy)| !busy))
}

fn bounce_alloc(len: usize) -> Option<DmaBuf> {
    if len <= 4096 {
        return dma::alloc(1);
    }
    let mut p = POOL.lock();
    match p.as_mut() {
        Some((b, busy)) if !*busy && len <= BOUNCE_MAX => {
            *busy = true;
            Some(*b)
        }
        _ => None,
    }
}

fn bounce_free(b: DmaBuf) {
    let mut p = POOL.lock();
    match p.as_mut() {
        Some((pool, busy)) if pool.maddr == b.maddr => *busy = false,
        _ => dma::free(b),
    }
}

/// Bounce buffers in use, by the machine address given to the device.
static BOUNCES: spin::Mutex<BTreeMap<u64, DmaBuf>> = spin::Mutex::new(BTreeMap::new());

/// How many buffers were bounced (they could not be handed over in place).
static BOUNCED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Buffers bounced so far.
pub fn bounced() -> u64 {
    BOUNCED.load(core::sync::atomic::Ordering::Relaxed)
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned pages mapped for dom0's life and handed
// out once until `dma_dealloc`; `mmio_phys_to_virt` returns fresh slots mapping the region;
// `share` returns machine addresses of memory valid until `unshare`.
#[allow(unsafe_code)]
unsafe impl Hal for XenHal {
    fn dma_alloc(pages: usize, _dir: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match dma::alloc(pages) {
            Some(b) => (b.maddr, NonNull::new(b.va as *mut u8).expect("own pages are mapped")),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        dma::free(DmaBuf { va: vaddr.as_ptr() as u64, maddr: paddr, pages });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // The device's BARs were mapped when it was probed (`map_bars`); a region outside them
        // is a BAR the transport read differently (mapped now, or the device is unusable).
        let va = mapped(paddr, size).or_else(|| dma::map_mmio(paddr, size));
        match va {
            Some(va) => NonNull::new(va as *mut u8).expect("slots are not at 0"),
            None => panic!("virtio: cannot map device memory {paddr:#x}"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr().cast::<u8>() as u64;
        let len = buffer.len();
        if let Some(maddr) = dma::machine_span(va, len) {
            return maddr;
        }
        BOUNCED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // Drivers checked `can_share` first; failing here would leave the device an address
        // that is not ours to give, so dom0 stops instead.
        let Some(b) = bounce_alloc(len) else {
            panic!("virtio: no DMA memory to bounce {len} bytes (can_share was not checked)");
        };
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is valid for `len` bytes; the bounce buffer is ours
            // and at least as long; they do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(va as *const u8, b.va as *mut u8, len) };
        }
        BOUNCES.lock().insert(b.maddr, b);
        b.maddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(b) = BOUNCES.lock().remove(&paddr) else { return };
        if direction != BufferDirection::DriverToDevice {
            let len = buffer.len();
            // SAFETY: as in `share`, the other way.
            unsafe {
                core::ptr::copy_nonoverlapping(b.va as *const u8, buffer.as_ptr().cast::<u8>(), len)
            };
        }
        bounce_free(b);
    }
}
