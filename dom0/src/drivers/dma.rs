//! Memory devices see: DMA buffers and device MMIO, done as Xen's dom0 does them.
//!
//! DMA: a device is given *machine* addresses. dom0's pseudo-physical pages are machine
//! frames it finds through its P2M, so a single page is trivially contiguous; a buffer
//! spanning pages is handed to a device directly only when its frames are machine-contiguous
//! ([`machine_span`]); otherwise it is bounced through a contiguous DMA buffer (what
//! swiotlb-xen does). DMA buffers are dom0's own pages (`pv_guest::memory::pages`), zeroed,
//! single pages reused; a multi-page buffer (a power of two of pages) is used as it is where
//! its frames happen to be machine-contiguous (the builder lays dom0 out in order), and made
//! contiguous otherwise with `XENMEM_exchange`, as Linux's `xen_create_contiguous_region`:
//! its pages are unmapped, exchanged for a machine-contiguous run, remapped, and dom0's P2M
//! updated.
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
    use hypercall_abi::memory::{XENMEM_EXCHANGE, XenMemoryExchange, XenMemoryReservation};
    use hypercall_abi::mmu::{MMU_NORMAL_PT_UPDATE, MmuUpdate, MmuextOp, UVMF_INVLPG, Uvmf};
    use hypercall_abi::{DomId, GuestHandle, Mfn, VAddr};
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

    /// `n` zeroed, machine-contiguous pages (`n` rounded up to a power of two when more than
    /// one), or `None` (logged) when none can be had.
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
        let n = n.next_power_of_two();
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
        if taken.iter().enumerate().any(|(i, p)| p.va() != va + 4096 * i as u64) {
            log::warn!("dma: own pages not virtually consecutive");
            FREE.lock().extend(taken.iter().map(|p| single(*p)));
            return None;
        }
        let mfns: Vec<u64> = taken.iter().map(|p| p.mfn().0).collect();
        let maddr = match contiguous_maddr(va, &mfns) {
            Some(m) => Some(m),
            None => make_contiguous(va, &mfns),
        };
        match maddr {
            Some(maddr) => Some(DmaBuf { va, maddr, pages: n }),
            None => {
                log::warn!("dma: no machine-contiguous run of {n} pages");
                FREE.lock().extend(taken.iter().map(|p| single(*p)));
                None
            }
        }
    }

    /// `n` (a power of two) fresh pages made machine-contiguous by `XENMEM_exchange` whether
    /// or not they were already: the self-test of that path.
    pub fn alloc_exchanged(n: usize) -> Option<DmaBuf> {
        let n = n.next_power_of_two();
        let taken: Vec<pages::OwnPage> = (0..n).map_while(|_| pages::alloc_page()).collect();
        let va = taken.first()?.va();
        let ok = taken.len() == n
            && taken.iter().enumerate().all(|(i, p)| p.va() == va + 4096 * i as u64);
        let mfns: Vec<u64> = taken.iter().map(|p| p.mfn().0).collect();
        match ok.then(|| make_contiguous(va, &mfns)).flatten() {
            Some(maddr) => Some(DmaBuf { va, maddr, pages: n }),
            None => {
                FREE.lock().extend(taken.iter().map(|p| single(*p)));
                None
            }
        }
    }

    /// PTE bits of dom0's data pages: present, writable, user, accessed, dirty, no-execute.
    const DATA_PTE: u64 = 0x67 | (1 << 63);

    fn remap(va: u64, mfn: u64) -> bool {
        #[allow(unsafe_code)]
        // SAFETY: `va` is one of dom0's own pages being exchanged, referenced by nothing else
        // (fresh from `alloc_page`); mapping it again to one of dom0's frames.
        let r = unsafe {
            guest::update_va_mapping(VAddr(va), (mfn << 12) | DATA_PTE, Uvmf(UVMF_INVLPG))
        };
        r.is_ok()
    }

    /// `XENMEM_exchange`: the pages at `va` (frames `mfns`, a power of two of them) for one
    /// machine-contiguous run, remapped at the same addresses and recorded in the P2M.
    fn make_contiguous(va: u64, mfns: &[u64]) -> Option<u64> {
        let order = mfns.len().trailing_zeros();
        let si = pv_guest::start_info();
        let pfn0 = (va - pv_guest::arch::VIRT_BASE) >> 12;
        if pfn0 + mfns.len() as u64 > si.nr_pages {
            return None;
        }
        // Given up frames must be mapped nowhere (the hypervisor takes only unused ones).
        for i in 0..mfns.len() {
            #[allow(unsafe_code)]
            // SAFETY: as in `remap`; the page is not touched until remapped below.
            let r = unsafe {
                guest::update_va_mapping(VAddr(va + 4096 * i as u64), 0, Uvmf(UVMF_INVLPG))
            };
            if r.is_err() {
                for (j, &m) in mfns[..i].iter().enumerate() {
                    remap(va + 4096 * j as u64, m);
                }
                return None;
            }
        }
        let mut input: Vec<u64> = mfns.to_vec();
        let mut output = [pfn0];
        let mut x = XenMemoryExchange {
            input: XenMemoryReservation {
                extent_start: GuestHandle::from_mut_slice(&mut input),
                nr_extents: mfns.len() as u64,
                extent_order: 0,
                domid: DomId::SELF_,
                ..Default::default()
            },
            output: XenMemoryReservation {
                extent_start: GuestHandle::from_mut_slice(&mut output),
                nr_extents: 1,
                extent_order: order,
                domid: DomId::SELF_,
                ..Default::default()
            },
            nr_exchanged: 0,
        };
        #[allow(unsafe_code)]
        // SAFETY: the exchange reads `input` and writes `output` and `x` (borrowed here); the
        // frames it takes are unmapped above and referenced by nothing.
        let r = unsafe { guest::memory_op(XENMEM_EXCHANGE, &mut x) };
        let base = match r {
            Ok(_) if x.nr_exchanged == mfns.len() as u64 => output[0],
            _ => {
                log::warn!("dma: XENMEM_exchange of {} pages failed: {r:?}", mfns.len());
                // All or nothing per chunk, and one chunk here: the old frames are still ours.
                for (j, &m) in mfns.iter().enumerate() {
                    remap(va + 4096 * j as u64, m);
                }
                return None;
            }
        };
        for k in 0..mfns.len() as u64 {
            remap(va + 4096 * k, base + k);
            #[allow(unsafe_code)]
            // SAFETY: the P2M list lies in dom0's boot mapping (nr_pages entries from mfn_list,
            // bounds checked above) and only dom0 writes it.
            unsafe {
                ((si.mfn_list.0 + (pfn0 + k) * 8) as *mut u64).write_volatile(base + k)
            };
        }
        Some(base << 12)
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
