//! Memory devices see: DMA buffers and device MMIO, done as Xen's dom0 does them.
//!
//! DMA: a device is given *machine* addresses. dom0's pseudo-physical pages are machine
//! frames it finds through its P2M, so a single page is trivially contiguous; a buffer
//! spanning pages is handed to a device directly only when its frames are machine-contiguous
//! ([`machine_span`]); otherwise it is bounced through a contiguous DMA buffer (what
//! swiotlb-xen does). DMA buffers are dom0's own pages (`pv_guest::memory::pages`), zeroed,
//! single pages reused; a multi-page buffer is taken only where its frames happen to be
//! machine-contiguous (the builder lays dom0 out in order), and refused (logged) otherwise:
//! `XENMEM_exchange` is the way to make one contiguous and is not offered yet.
//!
//! MMIO: a device's BAR frames are mapped into dom0 with `mmu_update` and `foreigndom =
//! DOMID_IO`, uncached (PCD|PWT), in mapping slots of dom0's address space. The hypervisor
//! checks dom0's I/O privilege and refuses its own device pages (local APIC, IOAPIC).
//!
//! The arithmetic (page spans, contiguity) is hardware-free and host-tested.

/// The pages `[va, va + len)` touches: the first page's address and how many.
pub fn page_span(va: u64, len: usize) -> (u64, usize) {
    let first = va & !0xFFF;
    let end = (va + len as u64).div_ceil(4096) * 4096;
    (first, ((end - first) / 4096) as usize)
}

/// The machine address of `[va, va + len)` if its frames (`mfns`, one per page of the span)
/// are machine-contiguous.
pub fn contiguous_maddr(va: u64, mfns: &[u64]) -> Option<u64> {
    let first = *mfns.first()?;
    let ok = mfns.iter().enumerate().all(|(i, &m)| m == first + i as u64);
    ok.then_some((first << 12) | (va & 0xFFF))
}

#[cfg(target_os = "none")]
pub use machine::*;

#[cfg(target_os = "none")]
mod machine {
    use alloc::vec::Vec;

    use hypercall_abi::guest;
    use hypercall_abi::mmu::{MMU_NORMAL_PT_UPDATE, MmuUpdate, MmuextOp};
    use hypercall_abi::{DomId, Mfn};
    use pv_guest::memory::pages;

    use super::{contiguous_maddr, page_span};

    /// PTE of a device page: present, writable, write-through, cache disabled, accessed,
    /// dirty, no-execute.
    const MMIO_PTE: u64 = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | (1 << 63);

    /// A buffer devices may read and write: `pages` pages, mapped at `va`, at machine
    /// address `maddr` onwards.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DmaBuf {
        pub va: u64,
        pub maddr: u64,
        pub pages: usize,
    }

    /// Single pages given back, reused before new ones are taken.
    static FREE: spin::Mutex<Vec<DmaBuf>> = spin::Mutex::new(Vec::new());

    /// Machine frame behind `va` of dom0's boot mapping (heap, image, own pages).
    pub fn mfn_of(va: u64) -> Option<u64> {
        pages::virt_to_mfn(va & !0xFFF).map(|m| m.0)
    }

    /// Machine address of `[va, va + len)` if the device can be given it directly.
    pub fn machine_span(va: u64, len: usize) -> Option<u64> {
        let (first, n) = page_span(va, len);
        let mut mfns = Vec::with_capacity(n);
        for i in 0..n {
            mfns.push(mfn_of(first + 4096 * i as u64)?);
        }
        contiguous_maddr(va, &mfns)
    }

    fn zero(b: &DmaBuf) {
        #[allow(unsafe_code)]
        // SAFETY: a DMA buffer is dom0's own pages, mapped writable for its life and owned by
        // whoever holds the `DmaBuf` (being handed out here), so nothing else references them.
        unsafe {
            core::ptr::write_bytes(b.va as *mut u8, 0, 4096 * b.pages)
        };
    }

    /// `n` zeroed, machine-contiguous pages, or `None` (logged) when none can be had.
    pub fn alloc(n: usize) -> Option<DmaBuf> {
        if n == 0 {
            return None;
        }
        if n == 1
            && let Some(b) = FREE.lock().pop()
        {
            zero(&b);
            return Some(b);
        }
        let mut taken: Vec<pages::OwnPage> = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(p) = pages::alloc_page() else {
                log::warn!("dma: out of pages for a {n}-page buffer");
                FREE.lock().extend(taken.iter().map(|p| single(*p)));
                return None;
            };
            taken.push(p);
        }
        let va = taken[0].va();
        let consecutive = taken.iter().enumerate().all(|(i, p)| p.va() == va + 4096 * i as u64);
        let mfns: Vec<u64> = taken.iter().map(|p| p.mfn().0).collect();
        match contiguous_maddr(va, &mfns) {
            Some(maddr) if consecutive => Some(DmaBuf { va, maddr, pages: n }),
            _ => {
                log::warn!("dma: no machine-contiguous run of {n} pages");
                FREE.lock().extend(taken.iter().map(|p| single(*p)));
                None
            }
        }
    }

    fn single(p: pages::OwnPage) -> DmaBuf {
        DmaBuf { va: p.va(), maddr: p.mfn().0 << 12, pages: 1 }
    }

    /// Gives a buffer back (its pages are reused one by one).
    pub fn free(b: DmaBuf) {
        let mut f = FREE.lock();
        for i in 0..b.pages {
            let off = 4096 * i as u64;
            f.push(DmaBuf { va: b.va + off, maddr: b.maddr + off, pages: 1 });
        }
    }

    /// Maps `[maddr, maddr + len)` of device memory uncached into dom0 (`DOMID_IO`
    /// foreign mapping); returns the address of `maddr`.
    pub fn map_mmio(maddr: u64, len: usize) -> Option<u64> {
        let (first, n) = page_span(maddr, len.max(1));
        let va = pages::alloc_slots(n as u64)?;
        let mut reqs = Vec::with_capacity(n);
        for i in 0..n {
            let slot = va + 4096 * i as u64;
            let (l1, index) = pages::l1_slot_of(slot)?;
            reqs.push(MmuUpdate {
                ptr: ((l1.0 << 12) + 8 * index as u64) | MMU_NORMAL_PT_UPDATE,
                val: (first + 4096 * i as u64) | MMIO_PTE,
            });
        }
        #[allow(unsafe_code)]
        // SAFETY: the slots are fresh, past everything dom0 uses, and nothing references
        // them; the new entries map device memory, not RAM Rust code owns.
        let (r, done) = unsafe { guest::mmu_update(&reqs, DomId::IO) };
        if let Err(e) = r {
            log::warn!("dma: mapping device memory {maddr:#x}+{len:#x} failed after {done}: {e:?}");
            return None;
        }
        // The slots mapped dom0's own pages before: no TLB may keep that translation.
        let flush = [MmuextOp::tlb_flush_local()];
        #[allow(unsafe_code)]
        // SAFETY: a TLB flush changes no mapping.
        let _ = unsafe { guest::mmuext_op(&flush, DomId::SELF_) };
        Some(va + (maddr & 0xFFF))
    }

    /// dom0's own frame (for callers that need the type).
    pub fn mfn(va: u64) -> Option<Mfn> {
        mfn_of(va).map(Mfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_contiguity() {
        assert_eq!(page_span(0x1000, 4096), (0x1000, 1));
        assert_eq!(page_span(0x1FF0, 32), (0x1000, 2));
        assert_eq!(page_span(0x1800, 1), (0x1000, 1));
        assert_eq!(page_span(0x1800, 8192), (0x1000, 3));
        assert_eq!(contiguous_maddr(0x1800, &[7]), Some(0x7800));
        assert_eq!(contiguous_maddr(0x1800, &[7, 8, 9]), Some(0x7800));
        assert_eq!(contiguous_maddr(0x1800, &[7, 9]), None);
        assert_eq!(contiguous_maddr(0x1800, &[]), None);
    }
}
