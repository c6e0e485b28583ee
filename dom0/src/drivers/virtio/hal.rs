//! The `virtio-drivers` HAL for a Xen PV dom0: every address a device is given is a machine
//! address. Queues and other driver memory come from `dma::alloc` (dom0's own pages,
//! machine-contiguous); a caller's buffer is given to the device in place when its frames are
//! machine-contiguous, and bounced through a DMA buffer otherwise (copied in before the
//! device reads, out after it wrote, as swiotlb-xen does); BAR regions are mapped uncached
//! through `DOMID_IO` (`dma::map_mmio`).

use alloc::collections::BTreeMap;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::drivers::dma::{self, DmaBuf};

/// The HAL (no state of its own: `dma` keeps it).
#[derive(Debug)]
pub struct XenHal;

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
        match dma::map_mmio(paddr, size) {
            Some(va) => NonNull::new(va as *mut u8).expect("slots are not at 0"),
            // The transport has no way to fail here: a dom0 that cannot map its device's
            // registers cannot drive it.
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
        let Some(b) = dma::alloc(len.div_ceil(4096)) else {
            // No contiguous memory to bounce through: the device gets an address that maps
            // nothing of ours (the request fails at the device) rather than someone's RAM.
            log::warn!("virtio: no DMA memory to bounce {len} bytes");
            return 0;
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
        dma::free(b);
    }
}
