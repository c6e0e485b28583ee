//! The kernel's pages beyond its image: the slack the builder maps after the boot stack (at
//! least 512 KiB, up to a 4 MiB boundary) is split into pages the kernel owns (to grant to
//! other domains, or to use as rings) handed out from the bottom, and mapping slots for other
//! frames (shared_info, granted pages) taken from the top. Enough for a small kernel's rings;
//! a kernel that needs more maps further memory itself with mmu_update.

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::guest;
use hypercall_abi::mmu::{UVMF_INVLPG, Uvmf};
use hypercall_abi::start_info::StartInfo;
use hypercall_abi::{Mfn, VAddr};

use crate::arch::VIRT_BASE;
use crate::memory::shared::{self, SharedPage};

static NEXT_OWN: AtomicU64 = AtomicU64::new(0);
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

/// PTE bits for a data mapping: present, writable, user, accessed, dirty, no-execute.
const DATA: u64 = 0x67 | (1 << 63);

/// One past the last address of the boot mapping, derived as the builder lays it out.
pub fn boot_region_end(si: &StartInfo) -> u64 {
    let stack_top = si.pt_base.0 + (si.nr_pt_frames + 1) * 4096;
    let four_mib = 4u64 << 20;
    let mut end = stack_top.div_ceil(four_mib) * four_mib;
    if end - stack_top < 512 << 10 {
        end += four_mib;
    }
    end
}

/// Sets the allocators up from start_info.
pub fn init(si: &StartInfo) {
    let stack_top = si.pt_base.0 + (si.nr_pt_frames + 1) * 4096;
    NEXT_OWN.store(stack_top, Ordering::Relaxed);
    NEXT_SLOT.store(boot_region_end(si), Ordering::Relaxed);
}

/// A page of the kernel's own memory: zeroed, mapped writable. Only [`alloc_page`] makes
/// one (the fields are private), so [`OwnPage::shared`] always names a real page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnPage {
    va: u64,
    mfn: Mfn,
}

impl OwnPage {
    /// Its virtual address in the boot mapping.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// Its machine frame.
    pub fn mfn(&self) -> Mfn {
        self.mfn
    }

    pub fn shared(&self) -> SharedPage {
        #[allow(unsafe_code)]
        // SAFETY: own pages are mapped for the kernel's life and handed out once; the caller
        // shares them with another domain, so they are only accessed through SharedPage.
        unsafe {
            SharedPage::new(self.va)
        }
    }
}

/// Machine frame behind a virtual address of the boot mapping.
pub fn virt_to_mfn(va: u64) -> Option<Mfn> {
    let si = crate::start_info();
    shared::p2m_entry(si, (va - VIRT_BASE) >> 12).map(Mfn)
}

/// Takes one of the kernel's own pages; `None` when the slack is used up.
pub fn alloc_page() -> Option<OwnPage> {
    let va = NEXT_OWN.fetch_add(4096, Ordering::Relaxed);
    if va + 4096 > NEXT_SLOT.load(Ordering::Relaxed) {
        NEXT_OWN.fetch_sub(4096, Ordering::Relaxed);
        return None;
    }
    Some(OwnPage { va, mfn: virt_to_mfn(va)? })
}

/// Maps machine frame `mfn` (not the kernel's own: shared_info, a granted page) at a fresh
/// slot with update_va_mapping; the frame the slot held before is given up.
pub fn map_frame(mfn: Mfn) -> Option<SharedPage> {
    let va = alloc_slot()?;
    #[allow(unsafe_code)]
    // SAFETY: the slot is inside this kernel's boot mapping, past everything it uses; the new
    // mapping is a data page.
    let r = unsafe { guest::update_va_mapping(VAddr(va), (mfn.0 << 12) | DATA, Uvmf(UVMF_INVLPG)) };
    r.ok()?;
    #[allow(unsafe_code)]
    // SAFETY: mapped just above for the kernel's life; shared, so accessed only atomically.
    Some(unsafe { SharedPage::new(va) })
}

/// What the kernel's page tables map at `va` (a slot, or the boot mapping), if anything: read
/// from the L1 entry, through the M2P walk of [`l1_slot_of`].
pub fn mapped_mfn(va: u64) -> Option<Mfn> {
    let (l1, index) = l1_slot_of(va)?;
    let pfn = shared::m2p_entry(l1.0);
    let e = shared::read_table_entry(VIRT_BASE + pfn * 4096, index);
    (e & 1 != 0).then_some(Mfn((e & 0x000F_FFFF_FFFF_F000) >> 12))
}

/// Slots given back by [`free_slot`], taken again before new ones.
static FREE_SLOTS: spin::Mutex<alloc::vec::Vec<u64>> = spin::Mutex::new(alloc::vec::Vec::new());

/// A mapping slot (for grant maps): its VA, whose PTE the caller will replace.
pub fn alloc_slot() -> Option<u64> {
    if let Some(va) = FREE_SLOTS.lock().pop() {
        return Some(va);
    }
    let va = NEXT_SLOT.fetch_sub(4096, Ordering::Relaxed) - 4096;
    if va < NEXT_OWN.load(Ordering::Relaxed) {
        NEXT_SLOT.fetch_add(4096, Ordering::Relaxed);
        return None;
    }
    Some(va)
}

/// `n` consecutive mapping slots (for a device's MMIO, mapped page by page): the lowest VA.
/// They are never given back.
pub fn alloc_slots(n: u64) -> Option<u64> {
    let size = n.checked_mul(4096)?;
    let va = NEXT_SLOT.fetch_sub(size, Ordering::Relaxed).checked_sub(size)?;
    if va < NEXT_OWN.load(Ordering::Relaxed) {
        NEXT_SLOT.fetch_add(size, Ordering::Relaxed);
        return None;
    }
    Some(va)
}

/// Runs of consecutive slots given back by [`free_slot_run`], by length, taken again first.
static FREE_RUNS: spin::Mutex<alloc::vec::Vec<(u64, u64)>> =
    spin::Mutex::new(alloc::vec::Vec::new());

/// `n` consecutive mapping slots for a multi-page grant mapping (a ring of several pages):
/// the lowest VA. A run given back with [`free_slot_run`] is reused for the same length, so a
/// peer that connects and disconnects in a loop does not use up the slack.
pub fn alloc_slot_run(n: u64) -> Option<u64> {
    let mut free = FREE_RUNS.lock();
    if let Some(i) = free.iter().position(|&(_, len)| len == n) {
        return Some(free.swap_remove(i).0);
    }
    drop(free);
    alloc_slots(n)
}

/// Gives back a run from [`alloc_slot_run`] whose mappings are all gone.
pub fn free_slot_run(va: u64, n: u64) {
    FREE_RUNS.lock().push((va, n));
}

/// `n` of the kernel's own pages at consecutive addresses (a multi-page ring the kernel
/// shares): None if the slack cannot hold them.
pub fn alloc_pages(n: usize) -> Option<alloc::vec::Vec<OwnPage>> {
    let mut v: alloc::vec::Vec<OwnPage> = alloc::vec::Vec::with_capacity(n);
    for _ in 0..n {
        let p = alloc_page()?;
        if v.last().is_some_and(|l| l.va + 4096 != p.va) {
            return None;
        }
        v.push(p);
    }
    Some(v)
}

/// Gives back a slot from [`alloc_slot`] whose mapping is gone (a grant unmap leaves it
/// empty), so a kernel that maps and unmaps in a loop does not run out of slack.
pub fn free_slot(va: u64) {
    FREE_SLOTS.lock().push(va);
}

/// The L1 table (machine frame) and slot that map `va` in the kernel's page tables, walking
/// them through the M2P (each table frame lies in the boot mapping).
pub fn l1_slot_of(va: u64) -> Option<(Mfn, usize)> {
    let si = crate::start_info();
    let mut table_va = si.pt_base.0;
    for level in (2..=4u32).rev() {
        let e = shared::read_table_entry(table_va, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        if e & 1 == 0 {
            return None;
        }
        let mfn = (e & 0x000F_FFFF_FFFF_F000) >> 12;
        let pfn = shared::m2p_entry(mfn);
        if pfn >= si.nr_pages {
            return None;
        }
        table_va = VIRT_BASE + pfn * 4096;
        if level == 2 {
            return Some((Mfn(mfn), ((va >> 12) & 511) as usize));
        }
    }
    None
}

/// Machine frame of the kernel's L4 (the bootstrap table at pt_base).
pub fn l4_mfn() -> Option<Mfn> {
    virt_to_mfn(crate::start_info().pt_base.0)
}
