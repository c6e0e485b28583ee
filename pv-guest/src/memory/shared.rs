//! Memory this kernel shares with the hypervisor or other domains, reached only through
//! volatile or atomic accesses: start_info (written once by the builder), the shared_info page
//! (event bitmaps, vcpu_info, time), and pages mapped from or granted to other domains. Every
//! [`SharedPage`] is made here or by the marked single calls `lib.rs` lists.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use hypercall_abi::start_info::StartInfo;

/// The start_info page the hypervisor handed over in rsi.
pub fn start_info_at(va: u64) -> &'static StartInfo {
    assert!(va.is_multiple_of(8) && va != 0, "start_info pointer {va:#x}");
    // SAFETY: the hypervisor's builder wrote a complete start_info at `va` inside the mapped
    // boot region, which stays mapped for the kernel's life and is never written again, so a
    // shared 'static reference is sound; the struct is plain data valid for any bytes.
    unsafe { &*(va as *const StartInfo) }
}

/// A page mapped at a fixed virtual address for the kernel's lifetime, shared with someone who
/// may write it at any time: accessed by atomics only, never through a reference to its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedPage {
    va: u64,
}

impl SharedPage {
    /// # Safety
    /// `va` must be page aligned and mapped (readable and writable) for the rest of the
    /// kernel's life, and never be accessed through references by anyone in this kernel.
    pub unsafe fn new(va: u64) -> Self {
        assert!(va.is_multiple_of(4096));
        SharedPage { va }
    }

    pub fn va(&self) -> u64 {
        self.va
    }

    pub fn u64_at(&self, offset: usize) -> &'static AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= 4096);
        // SAFETY: in bounds, aligned, and mapped for the kernel's life (constructor's
        // contract); atomics tolerate the peer's concurrent writes.
        unsafe { &*((self.va + offset as u64) as *const AtomicU64) }
    }

    pub fn u32_at(&self, offset: usize) -> &'static AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= 4096);
        // SAFETY: as in `u64_at`.
        unsafe { &*((self.va + offset as u64) as *const AtomicU32) }
    }

    pub fn u8_at(&self, offset: usize) -> &'static AtomicU8 {
        assert!(offset < 4096);
        // SAFETY: as in `u64_at`.
        unsafe { &*((self.va + offset as u64) as *const AtomicU8) }
    }

    /// Copies `buf.len()` bytes out from `offset` (a snapshot: the peer may be writing).
    /// Aligned stretches go eight bytes per access.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= 4096);
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            if at.is_multiple_of(8) && buf.len() - i >= 8 {
                let w = self.u64_at(at).load(Ordering::Relaxed);
                buf[i..i + 8].copy_from_slice(&w.to_le_bytes());
                i += 8;
            } else {
                buf[i] = self.u8_at(at).load(Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// Copies `bytes` in at `offset`, eight bytes per access where aligned.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= 4096);
        let mut i = 0;
        while i < bytes.len() {
            let at = offset + i;
            if at.is_multiple_of(8) && bytes.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[i..i + 8]);
                self.u64_at(at).store(u64::from_le_bytes(w), Ordering::Relaxed);
                i += 8;
            } else {
                self.u8_at(at).store(bytes[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// The page as a raw pointer, for the ring-buffers crate (which takes raw shared memory).
    pub fn as_ptr(&self) -> *mut u8 {
        self.va as *mut u8
    }
}

/// Entry `pfn` of the P2M list the builder wrote at `start_info.mfn_list` (nr_pages entries).
pub fn p2m_entry(si: &StartInfo, pfn: u64) -> Option<u64> {
    if pfn >= si.nr_pages {
        return None;
    }
    let va = si.mfn_list.0 + pfn * 8;
    // SAFETY: the P2M list lies in the boot mapping (nr_pages u64 entries from mfn_list, bounds
    // checked above), is this kernel's own memory and nobody else writes it.
    Some(unsafe { (va as *const u64).read_volatile() })
}

/// The hypervisor's read-only machine-to-physical table entry for `mfn`.
pub fn m2p_entry(mfn: u64) -> u64 {
    const M2P: u64 = hypercall_abi::arch::MACH2PHYS_VIRT_START;
    const ENTRIES: u64 = hypercall_abi::arch::MACH2PHYS_NR_ENTRIES;
    if mfn >= ENTRIES {
        return u64::MAX;
    }
    // SAFETY: the hypervisor maps the M2P read-only at MACH2PHYS_VIRT_START in every address
    // space; a frame beyond RAM has no entry mapped, so reading it could fault: callers pass
    // frames they own (RAM).
    unsafe { ((M2P + mfn * 8) as *const u64).read_volatile() }
}

/// Entry `index` of a page-table frame of this kernel's, mapped read-only at `table_va` in the
/// boot region (the builder maps every bootstrap table there).
pub fn read_table_entry(table_va: u64, index: usize) -> u64 {
    assert!(table_va.is_multiple_of(4096) && index < 512);
    assert!(table_va >= crate::arch::VIRT_BASE, "not in the boot mapping");
    // SAFETY: the address is inside the kernel's boot mapping (checked above against its base;
    // the callers derive it from the tables themselves), aligned, and page tables are only
    // ever changed by the hypervisor; a volatile read takes one consistent snapshot.
    unsafe { ((table_va + index as u64 * 8) as *const u64).read_volatile() }
}

/// The ring-buffers view of a page. Each page must back exactly one ring (one end), and stay
/// mapped while the ring is used: the kernel drops the ring before unmapping the page.
fn ring_mem(page: SharedPage) -> ring_buffers::SharedMem<'static> {
    let base = core::ptr::NonNull::new(page.as_ptr()).expect("mapped pages are not at 0");
    // SAFETY: the page is mapped for as long as the ring object lives (the callers below are
    // the only places rings are made, each from a page dedicated to that ring), it is 4096
    // bytes and page aligned, and it is accessed only through the ring's atomics.
    unsafe { ring_buffers::SharedMem::from_raw(base, 4096).expect("a page is a valid ring size") }
}

/// A request/response ring (`io/ring.h`) on `pages` consecutive pages from `va`.
///
/// # Safety
/// `[va, va + pages * 4096)` must be mapped, page aligned, dedicated to this one ring (one
/// end), and stay mapped while the ring lives.
unsafe fn request_ring_at<Req: ring_buffers::RingItem, Rsp: ring_buffers::RingItem>(
    va: u64,
    pages: usize,
) -> Option<ring_buffers::SharedRing<'static, Req, Rsp>> {
    let base = core::ptr::NonNull::new(va as *mut u8)?;
    // SAFETY: the caller's contract; accessed only through the ring's atomics.
    let mem = unsafe { ring_buffers::SharedMem::from_raw(base, pages * 4096) }.ok()?;
    ring_buffers::SharedRing::new(mem).ok()
}

/// The request/response ring a frontend shares on its own consecutive pages (`pages` from
/// [`crate::memory::pages::alloc_pages`]); None unless they are consecutive.
pub fn own_request_ring<Req: ring_buffers::RingItem, Rsp: ring_buffers::RingItem>(
    pages: &[crate::memory::pages::OwnPage],
) -> Option<ring_buffers::SharedRing<'static, Req, Rsp>> {
    let first = pages.first()?.va();
    if pages.iter().enumerate().any(|(i, p)| p.va() != first + 4096 * i as u64) {
        return None;
    }
    // SAFETY: own pages are mapped for the kernel's life, consecutive (checked), handed out
    // once, and the caller dedicates them to this ring.
    unsafe { request_ring_at(first, pages.len()) }
}

/// The request/response ring a back end reaches through `run` (another domain's granted
/// pages, mapped consecutively). The ring must be dropped before `run` is unmapped.
pub fn mapped_request_ring<Req: ring_buffers::RingItem, Rsp: ring_buffers::RingItem>(
    run: &crate::grant::MappedRun,
) -> Option<ring_buffers::SharedRing<'static, Req, Rsp>> {
    // SAFETY: a MappedRun maps its pages consecutively from `va` until it is unmapped (which
    // consumes it; the caller drops the ring first), and only this ring uses it.
    unsafe { request_ring_at(run.va(), run.pages()) }
}

/// The console ring on `page` (xencons_interface layout).
pub fn console_ring(page: SharedPage) -> ring_buffers::ConsoleRing<'static> {
    ring_buffers::ConsoleRing::new(ring_mem(page)).expect("console layout fits a page")
}

/// The XenStore ring on `page` (xenstore_domain_interface layout).
pub fn xenstore_ring(page: SharedPage) -> ring_buffers::XenstoreRing<'static> {
    ring_buffers::XenstoreRing::new(ring_mem(page)).expect("xenstore layout fits a page")
}

/// A request/response ring (`io/ring.h`) on `page`: blkif, netif. Which end is made of it,
/// and whether it is initialised first, is the caller's.
pub fn request_ring<Req: ring_buffers::RingItem, Rsp: ring_buffers::RingItem>(
    page: SharedPage,
) -> ring_buffers::SharedRing<'static, Req, Rsp> {
    ring_buffers::SharedRing::new(ring_mem(page)).expect("a one-page ring fits its slots")
}

/// The page of the boot mapping that holds machine frame `mfn` of this kernel's (the builder
/// puts the XenStore and console pages there).
pub fn own_page_for(mfn: u64) -> Option<SharedPage> {
    let si = crate::start_info();
    let pfn = m2p_entry(mfn);
    if pfn >= si.nr_pages || p2m_entry(si, pfn) != Some(mfn) {
        return None;
    }
    // SAFETY: the frame is this kernel's (P2M and M2P agree) and lies in the boot mapping,
    // which stays mapped; it is shared with dom0, so only accessed through SharedPage.
    Some(unsafe { SharedPage::new(crate::arch::VIRT_BASE + pfn * 4096) })
}

/// Sets entry `pfn` of the P2M list (the balloon: a frame given back or taken again). False if
/// `pfn` is past the list.
pub fn set_p2m_entry(si: &StartInfo, pfn: u64, mfn: u64) -> bool {
    if pfn >= si.nr_pages {
        return false;
    }
    let va = si.mfn_list.0 + pfn * 8;
    // SAFETY: as in `p2m_entry`: the list lies in the boot mapping, writable, this kernel's own;
    // only this kernel (its balloon, on its one vCPU) writes it after boot.
    unsafe { (va as *mut u64).write_volatile(mfn) };
    true
}
