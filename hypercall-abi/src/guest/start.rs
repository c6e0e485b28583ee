//! What a kernel starts from and maps: [`Start`], the start_info page as handed over at entry;
//! [`P2m`], its pseudo-physical-to-machine list; [`PageSlot`], a page of the kernel image that
//! a shared page (shared_info, a grant-table frame) is mapped over; [`BootStack`] for
//! [`pv_start!`](crate::pv_start); and reading system time.
//!
//! The safe functions here rest on two facts: a [`Start`] can only come from the builder's
//! `rsi` (its constructor is `unsafe`, and [`pv_start!`](crate::pv_start) is the one caller a
//! kernel needs), so frame numbers read from it are the hypervisor's; and a [`PageSlot`] is a
//! page no Rust code reads or writes, so replacing its mapping cannot pull memory from under a
//! reference.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::{gnttab_setup_table, update_va_mapping};
use crate::errno::Errno;
use crate::grant_table::GrantTableFrameV1;
use crate::mmu::{PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_RW, PTE_USER, Uvmf, pte};
use crate::shared_info::AtomicSharedInfo;
use crate::start_info::StartInfo;
use crate::types::{DomId, Mfn, Pfn, VAddr};

/// The start_info page the domain builder handed over, as a token: only [`Start::from_entry`]
/// makes one, so what it says (frame numbers, the P2M list's address) is the builder's.
#[derive(Copy, Clone, Debug)]
pub struct Start {
    info: &'static StartInfo,
}

impl Start {
    /// The token for the start_info at `rsi`.
    ///
    /// # Safety
    ///
    /// `rsi` must be the value the domain builder put in rsi at the kernel's entry point: the
    /// address of start_info in the boot mapping, which stays mapped and is written by nobody
    /// while the kernel runs (a kernel that unmaps its boot region, or resumes from suspend,
    /// must stop using the token).
    #[must_use]
    pub unsafe fn from_entry(rsi: u64) -> Start {
        assert!(rsi != 0 && rsi.is_multiple_of(8), "start_info pointer {rsi:#x}");
        // SAFETY: by the caller's contract the builder wrote a complete start_info at `rsi`, in
        // memory that stays mapped and unwritten, so a shared 'static reference is sound;
        // `StartInfo` is plain data, valid for any bytes.
        Start { info: unsafe { &*(rsi as *const StartInfo) } }
    }

    /// The page's fields.
    #[must_use]
    pub fn info(self) -> &'static StartInfo {
        self.info
    }

    /// True for the initial domain (`SIF_INITDOMAIN`).
    #[must_use]
    pub fn is_initial_domain(self) -> bool {
        self.info.is_initdomain()
    }

    /// This domain's P2M list (`nr_pages` MFNs at `mfn_list`).
    #[must_use]
    pub fn p2m(self) -> P2m {
        let (va, n) = (self.info.mfn_list.0, self.info.nr_pages as usize);
        assert!(va.is_multiple_of(8) && va != 0, "P2M list at {va:#x}");
        // SAFETY: the builder put `nr_pages` u64 entries at `mfn_list`, inside the boot mapping
        // (the `Start` contract keeps it mapped); it is this kernel's own memory, and every
        // access this crate makes to it is atomic, so other `P2m`s over it are fine.
        let entries = unsafe { core::slice::from_raw_parts(va as *const AtomicU64, n) };
        P2m { entries }
    }
}

/// A domain's pseudo-physical-to-machine list: one MFN per PFN, in the domain's own memory
/// (the kernel maintains it when it changes its memory; the hypervisor never reads it).
#[derive(Copy, Clone, Debug)]
pub struct P2m {
    entries: &'static [AtomicU64],
}

impl P2m {
    /// Number of entries (`start_info.nr_pages`).
    #[must_use]
    pub fn len(self) -> usize {
        self.entries.len()
    }

    /// True if the list is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.entries.is_empty()
    }

    /// The MFN behind `pfn`; `None` past the end or for a hole (`INVALID`).
    #[must_use]
    pub fn pfn_to_mfn(self, pfn: Pfn) -> Option<Mfn> {
        let e = self.entries.get(usize::try_from(pfn.0).ok()?)?.load(Ordering::Relaxed);
        (e != Mfn::INVALID.0).then_some(Mfn(e))
    }

    /// The PFN `mfn` backs in this domain, found in the list itself: `None` for a frame that
    /// is not this domain's. A linear scan (fine at boot, for the console or XenStore page);
    /// the O(1) route is the hypervisor's M2P table, [`m2p_entry`](super::m2p_entry), which
    /// is `unsafe` because it faults for frames in holes of machine memory.
    #[must_use]
    pub fn mfn_to_pfn(self, mfn: Mfn) -> Option<Pfn> {
        self.entries.iter().position(|e| e.load(Ordering::Relaxed) == mfn.0).map(|i| Pfn(i as u64))
    }

    /// Records that `pfn` is now backed by `mfn` (after `populate_physmap` or an exchange);
    /// false past the end.
    pub fn set(self, pfn: Pfn, mfn: Mfn) -> bool {
        let Some(e) = usize::try_from(pfn.0).ok().and_then(|i| self.entries.get(i)) else {
            return false;
        };
        e.store(mfn.0, Ordering::Relaxed);
        true
    }
}

/// A page of the kernel image that a shared page is mapped over, for the kernel's life: put
/// one in a `static` per page to map (`static SHARED_INFO: PageSlot = PageSlot::new();`).
/// No Rust code ever reads or writes the page's own bytes, so replacing its mapping is safe;
/// the frame that backed it is left unmapped (the P2M still names it, so don't use the slot's
/// PFN for anything). Each slot can be mapped once; afterwards the slot hands out the view
/// again ([`shared_info`](Self::shared_info), [`grant_table`](Self::grant_table)), so code
/// without access to the first caller's reference (an upcall handler) can reach the page.
#[repr(C, align(4096))]
pub struct PageSlot {
    page: UnsafeCell<[u8; 4096]>,
    state: AtomicU8,
}

// SAFETY: the page bytes are never accessed through the `UnsafeCell` (only the address is
// taken), and `state` is atomic.
unsafe impl Sync for PageSlot {}

/// `PageSlot::state`: what is mapped there. Set once, by the mapping call.
const SLOT_FREE: u8 = 0;
const SLOT_BUSY: u8 = 1;
const SLOT_RAW: u8 = 2;
const SLOT_SHARED_INFO: u8 = 3;
const SLOT_GRANT_TABLE: u8 = 4;

impl core::fmt::Debug for PageSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageSlot").field("va", &self.va()).finish()
    }
}

impl Default for PageSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// PTE flags of a slot mapping: present, writable, user (a PV kernel runs in ring 3),
/// accessed, dirty, never executable.
const SLOT_PTE: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_NX;

impl PageSlot {
    /// An unmapped slot.
    #[must_use]
    pub const fn new() -> Self {
        PageSlot { page: UnsafeCell::new([0; 4096]), state: AtomicU8::new(SLOT_FREE) }
    }

    /// The slot's virtual address.
    #[must_use]
    pub fn va(&self) -> VAddr {
        VAddr(self.page.get() as u64)
    }

    /// Maps `mfn` at the slot (`update_va_mapping`, flushing the old translation) and returns
    /// the slot's address. `EBUSY` if the slot was mapped already; the hypervisor's error if it
    /// refused (the slot is then free again).
    ///
    /// # Safety
    ///
    /// `mfn` must not be memory that Rust code accesses through references other than to
    /// atomics (the mapping aliases it), and whoever else writes it must do so in a way the
    /// caller's accesses through the slot tolerate.
    pub unsafe fn map_frame(&'static self, mfn: Mfn) -> Result<VAddr, Errno> {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.map_as(mfn, SLOT_RAW) }
    }

    /// [`map_frame`](Self::map_frame), recording `kind` once the mapping is in place.
    ///
    /// # Safety
    ///
    /// As for [`map_frame`](Self::map_frame).
    unsafe fn map_as(&'static self, mfn: Mfn, kind: u8) -> Result<VAddr, Errno> {
        if self
            .state
            .compare_exchange(SLOT_FREE, SLOT_BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Errno::EBUSY);
        }
        let va = self.va();
        // SAFETY: the slot's page is never accessed by Rust code (see the type's doc), so no
        // reference depends on its old mapping; what `mfn` is, is the caller's contract.
        let r = unsafe { update_va_mapping(va, pte(mfn, SLOT_PTE), Uvmf::INVLPG) };
        if let Err(e) = r {
            self.state.store(SLOT_FREE, Ordering::Release);
            return Err(e);
        }
        self.state.store(kind, Ordering::Release);
        Ok(va)
    }

    /// Maps this domain's shared_info page (its machine address is in start_info) and returns
    /// the live view of it.
    pub fn map_shared_info(
        &'static self,
        start: Start,
    ) -> Result<&'static AtomicSharedInfo, Errno> {
        let mfn = start.info().shared_info.frame();
        // SAFETY: the frame is the shared_info page the hypervisor named in start_info (the
        // `Start` token vouches for that): no Rust memory, and accessed only through atomics.
        unsafe { self.map_as(mfn, SLOT_SHARED_INFO) }?;
        self.shared_info().ok_or(Errno::EBUSY)
    }

    /// The shared_info view, if [`map_shared_info`](Self::map_shared_info) mapped this slot.
    #[must_use]
    pub fn shared_info(&'static self) -> Option<&'static AtomicSharedInfo> {
        if self.state.load(Ordering::Acquire) != SLOT_SHARED_INFO {
            return None;
        }
        // SAFETY: the slot maps the shared_info page for the kernel's life (slots are never
        // unmapped, and the state says what is there); `AtomicSharedInfo` has its layout, is
        // valid for any bytes and only allows atomic accesses, which tolerate the
        // hypervisor's concurrent writes.
        Some(unsafe { &*(self.va().0 as *const AtomicSharedInfo) })
    }

    /// Sets up this domain's grant table with one frame (`GNTTABOP_setup_table`), maps that
    /// frame and returns its 512 entries. Entries 0-7 are reserved for the toolstack (a domU's
    /// console and XenStore grants are there).
    pub fn map_grant_table(&'static self) -> Result<&'static GrantTableFrameV1, Errno> {
        let mut frames = [Mfn(0)];
        gnttab_setup_table(DomId::SELF_, &mut frames)?;
        // SAFETY: the frame is a grant-table frame the hypervisor just handed this domain: no
        // Rust memory, and accessed only through atomics.
        unsafe { self.map_as(frames[0], SLOT_GRANT_TABLE) }?;
        self.grant_table().ok_or(Errno::EBUSY)
    }

    /// The grant-table view, if [`map_grant_table`](Self::map_grant_table) mapped this slot.
    #[must_use]
    pub fn grant_table(&'static self) -> Option<&'static GrantTableFrameV1> {
        if self.state.load(Ordering::Acquire) != SLOT_GRANT_TABLE {
            return None;
        }
        // SAFETY: the slot maps the table frame for the kernel's life (the state says so); a
        // `GrantTableFrameV1` is 4096 bytes of atomics, valid for any bytes, which tolerate
        // the hypervisor's concurrent flag updates.
        Some(unsafe { &*(self.va().0 as *const GrantTableFrameV1) })
    }
}

/// The stack [`pv_start!`](crate::pv_start) switches to before calling the kernel's main (the
/// builder's boot stack is a single page). Only the entry code uses it, through its address.
#[repr(C, align(16))]
pub struct BootStack<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: Rust code never touches the bytes; the CPU uses them as the stack of the one thread
// that starts the kernel.
unsafe impl<const N: usize> Sync for BootStack<N> {}

impl<const N: usize> BootStack<N> {
    /// A zeroed stack (it lands in `.bss`).
    #[must_use]
    pub const fn new() -> Self {
        BootStack(UnsafeCell::new([0; N]))
    }
}

impl<const N: usize> Default for BootStack<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The time-stamp counter (`rdtsc`; allowed in a PV kernel's ring 3).
#[must_use]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC reads a counter; PV guests run with CR4.TSD clear, so it does not fault.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    panic!("rdtsc exists only on x86_64")
}

/// System time in ns (since the hypervisor booted) on vCPU `vcpu`: the vCPU's time parameters
/// in shared_info applied to the TSC. `None` for a vCPU without a `vcpu_info` slot.
#[must_use]
pub fn system_time_ns(shared: &AtomicSharedInfo, vcpu: usize) -> Option<u64> {
    let t = shared.vcpu(vcpu)?.time().read();
    Some(t.ns_at(rdtsc()))
}
