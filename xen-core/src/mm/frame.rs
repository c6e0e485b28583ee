//! The frame table: one [`FrameInfo`] per machine frame, saying who owns it, what type it has
//! and how many references hold it; the free-frame list; and each domain's page list and
//! accounting. The reference rules live here:
//!
//! - a frame allocated to a domain carries the `ALLOCATED` flag, which itself holds one
//!   general reference; everything that maps, pins or otherwise uses the frame takes another;
//! - a frame returns to the free list only when its last general reference is dropped, so a
//!   frame in use (mapped, pinned, typed, granted-and-mapped) is never freed (invariant 4).
//!
//! Free frames are on one of two lists: *dirty* (as freed, holding what its last owner
//! wrote) and *scrubbed* (zeroed while the CPU idled, [`Mm::scrub_one`]). Allocation takes a
//! scrubbed frame first, so a guest's memory needs no zeroing on its way to the guest when
//! the idle CPU got there first ([`Mm::domain_alloc_zeroed`]); Xen scrubs freed pages in idle
//! time likewise.
//!
//! Page types and validation are in `types`. The whole structure sits behind one lock in the
//! hypervisor, which keeps the rules simple; finer locking can come with more CPUs.

use alloc::collections::BTreeMap;

use hypercall_abi::{DomId, Errno, Mfn};

use super::tlb::Tlb;

/// End marker for the intrusive frame lists.
pub const NO_FRAME: u32 = u32::MAX;
/// M2P value of a frame that belongs to no guest pseudo-physical address.
pub const M2P_INVALID: u64 = u64::MAX;

/// What a frame is being used as. A frame has one type at a time; see `types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    None = 0,
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
    Writable = 5,
    SegDesc = 6,
}

impl PageType {
    /// The page-table type for a level 1-4.
    pub fn table(level: u8) -> Option<PageType> {
        match level {
            1 => Some(PageType::L1),
            2 => Some(PageType::L2),
            3 => Some(PageType::L3),
            4 => Some(PageType::L4),
            _ => None,
        }
    }

    /// The level of a page-table type.
    pub fn level(self) -> Option<u8> {
        match self {
            PageType::L1 => Some(1),
            PageType::L2 => Some(2),
            PageType::L3 => Some(3),
            PageType::L4 => Some(4),
            _ => None,
        }
    }
}

/// Frame flags.
pub mod flags {
    /// Belongs to its owner's allocation (holds one general reference).
    pub const ALLOCATED: u8 = 1 << 0;
    /// Pinned as a page table by its owner (holds a general and a type reference).
    pub const PINNED: u8 = 1 << 1;
    /// A hypervisor page shared with its owner (shared_info): mappable, never released.
    pub const XEN_HEAP: u8 = 1 << 2;
    /// A free frame that is all zeroes (on the scrubbed list).
    pub const SCRUBBED: u8 = 1 << 3;
}

/// Per-frame bookkeeping: 24 bytes, so 6 MiB of table per GiB of RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrameInfo {
    pub owner: DomId,
    pub ptype: PageType,
    pub flags: u8,
    pub type_count: u32,
    pub ref_count: u32,
    prev: u32,
    next: u32,
    /// The flush clock when the frame last lost a mapping or its last type reference: until
    /// every CPU has flushed after this, a TLB may still translate to it (see `tlb`).
    pub tlb_stamp: u32,
}
static_assertions::const_assert_eq!(core::mem::size_of::<FrameInfo>(), 24);

impl FrameInfo {
    /// A frame the hypervisor keeps for itself (the initial state of every frame).
    pub const RESERVED: FrameInfo = FrameInfo {
        owner: DomId::XEN,
        ptype: PageType::None,
        flags: 0,
        type_count: 0,
        ref_count: 0,
        prev: NO_FRAME,
        next: NO_FRAME,
        tlb_stamp: 0,
    };

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A domain's memory accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomMem {
    /// Frames the domain owns (including ones released but still referenced), not counting
    /// hypervisor pages shared with it (`xen_pages`), as Xen counts.
    pub tot_pages: u64,
    /// Hypervisor pages shared with the domain (shared_info, grant-table frames).
    pub xen_pages: u64,
    /// Ceiling on `tot_pages`.
    pub max_pages: u64,
    /// May map I/O memory and other domains' frames (dom0).
    pub is_privileged: bool,
    /// Being destroyed: allocates nothing more, and its shared pages may be released.
    pub is_dying: bool,
    head: u32,
}

/// Takes frame `i` out of the doubly linked list starting at `head` (the free list or a
/// domain's page list).
fn unlink(frames: &mut [FrameInfo], head: &mut u32, i: u32) {
    let (prev, next) = (frames[i as usize].prev, frames[i as usize].next);
    if prev == NO_FRAME {
        *head = next;
    } else {
        frames[prev as usize].next = next;
    }
    if next != NO_FRAME {
        frames[next as usize].prev = prev;
    }
}

/// The frame table, the free list, the M2P table and per-domain accounting.
pub struct Mm<'f> {
    pub(super) frames: &'f mut [FrameInfo],
    pub(super) m2p: &'f mut [u64],
    /// The dirty free frames.
    free_head: u32,
    /// The scrubbed free frames.
    clean_head: u32,
    /// Free frames on both lists.
    free_count: u64,
    /// Of them, scrubbed.
    clean_count: u64,
    pub(super) doms: BTreeMap<DomId, DomMem>,
    /// The CPUs' TLBs: flushed before a frame that may still be in one changes role.
    pub(super) tlb: &'f dyn Tlb,
    /// Page-table entries validated or devalidated so far (a running count): how hypercalls
    /// measure the work they did, to restart before it grows unbounded.
    pub work: u64,
    /// Free frames only the hypervisor may take (for its heap and tables): whatever guests
    /// do with their memory, the hypervisor can still allocate.
    hv_reserve: u64,
    /// The hypervisor's L4 entries (slots 256-271) written into every validated L4.
    pub(super) xen_l4: [u64; 16],
    /// Device frames the hypervisor drives itself (local APIC, IOAPIC): I/O memory no
    /// domain may map, dom0 included.
    denied_io: [Option<Mfn>; 4],
}

impl<'f> Mm<'f> {
    /// Takes over `frames` (one per machine frame) and `m2p` (same length). Every frame starts
    /// reserved to the hypervisor; [`Mm::add_free`] hands over free RAM.
    pub fn new(
        frames: &'f mut [FrameInfo],
        m2p: &'f mut [u64],
        xen_l4: [u64; 16],
        tlb: &'f dyn Tlb,
    ) -> Self {
        assert!(frames.len() == m2p.len() && frames.len() < NO_FRAME as usize);
        frames.fill(FrameInfo::RESERVED);
        m2p.fill(M2P_INVALID);
        Self {
            frames,
            m2p,
            free_head: NO_FRAME,
            clean_head: NO_FRAME,
            free_count: 0,
            clean_count: 0,
            doms: BTreeMap::new(),
            tlb,
            work: 0,
            hv_reserve: 0,
            xen_l4,
            denied_io: [None; 4],
        }
    }

    /// Keeps `mfn` (a device page the hypervisor drives) from every guest mapping.
    pub fn deny_io(&mut self, mfn: Mfn) {
        if let Some(slot) = self.denied_io.iter_mut().find(|s| s.is_none()) {
            *slot = Some(mfn);
        }
    }

    /// Whether `mfn` is a device page no guest may map.
    pub fn is_denied_io(&self, mfn: Mfn) -> bool {
        self.denied_io.contains(&Some(mfn))
    }

    /// Number of machine frames the table covers.
    pub fn nr_frames(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Frames on the free lists.
    pub fn free_frames(&self) -> u64 {
        self.free_count
    }

    /// Of the free frames, those not yet scrubbed.
    pub fn dirty_frames(&self) -> u64 {
        self.free_count - self.clean_count
    }

    /// The bookkeeping of `mfn`, if it is RAM the table covers.
    pub fn frame(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(usize::try_from(mfn.0).ok()?)
    }

    pub(super) fn idx(&self, mfn: Mfn) -> Option<usize> {
        let i = usize::try_from(mfn.0).ok()?;
        (i < self.frames.len()).then_some(i)
    }

    /// The M2P entry of `mfn`.
    pub fn m2p(&self, mfn: Mfn) -> Option<u64> {
        self.m2p.get(usize::try_from(mfn.0).ok()?).copied()
    }

    /// Records that `mfn` backs guest pseudo-physical frame `pfn` (MMU_MACHPHYS_UPDATE and the
    /// domain builder). Only the owner may do this, checked by the caller.
    pub fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
        if let Some(i) = self.idx(mfn) {
            self.m2p[i] = pfn;
        }
    }

    /// Marks `[start, end)` free.
    pub fn add_free(&mut self, start: Mfn, end: Mfn) {
        for m in (start.0..end.0.min(self.nr_frames())).rev() {
            self.push_free(m as u32);
        }
    }

    /// Marks a frame as I/O or firmware memory: not RAM anyone may own, but dom0 may map it.
    pub fn mark_io(&mut self, mfn: Mfn) {
        if let Some(i) = self.idx(mfn) {
            self.frames[i].owner = DomId::IO;
        }
    }

    /// Puts frame `i` on the dirty free list.
    fn push_free(&mut self, i: u32) {
        self.push_on(i, false);
    }

    /// Puts frame `i` on the scrubbed (`clean`) or the dirty free list.
    fn push_on(&mut self, i: u32, clean: bool) {
        let head = if clean { self.clean_head } else { self.free_head };
        let f = &mut self.frames[i as usize];
        // The stamp stays: a TLB may still translate to the frame while it sits here.
        *f = FrameInfo {
            owner: DomId::INVALID,
            flags: if clean { flags::SCRUBBED } else { 0 },
            next: head,
            tlb_stamp: f.tlb_stamp,
            ..FrameInfo::RESERVED
        };
        self.m2p[i as usize] = M2P_INVALID;
        // Doubly linked, so a run of free frames can be taken out of the middle (`exchange`).
        if head != NO_FRAME {
            self.frames[head as usize].prev = i;
        }
        if clean {
            self.clean_head = i;
            self.clean_count += 1;
        } else {
            self.free_head = i;
        }
        self.free_count += 1;
    }

    /// Takes free frame `i` out of its free list wherever it is; whether it was scrubbed.
    fn unlink_free(&mut self, i: u32) -> bool {
        let clean = self.frames[i as usize].has(flags::SCRUBBED);
        if clean {
            unlink(self.frames, &mut self.clean_head, i);
            self.clean_count -= 1;
        } else {
            unlink(self.frames, &mut self.free_head, i);
        }
        self.free_count -= 1;
        self.tlb.flush_stale(self.frames[i as usize].tlb_stamp);
        clean
    }

    /// Zeroes one dirty free frame with `zero` and moves it to the scrubbed list; false when
    /// none is left. Every TLB that may still translate to the frame from its last life is
    /// flushed first, so nothing can write to it once it is zero (the TLB rule, see `tlb`).
    pub fn scrub_one(&mut self, zero: impl FnOnce(Mfn)) -> bool {
        let i = self.free_head;
        if i == NO_FRAME {
            return false;
        }
        self.unlink_free(i);
        zero(Mfn(i.into()));
        self.push_on(i, true);
        true
    }

    fn is_free(&self, i: usize) -> bool {
        self.frames[i].owner == DomId::INVALID && self.frames[i].ref_count == 0
    }

    /// `XENMEM_exchange`'s core: gives `dom` a free, naturally aligned run of `2^order`
    /// machine-contiguous frames for `old` (as many frames, each the domain's own, allocated
    /// and used by nothing else: unmapped, untyped), which go back to the free list. All or
    /// nothing: `EINVAL` for a frame that cannot be given up, `ENOMEM` when no run is free.
    /// The caller sets the new frames' M2P entries.
    pub fn exchange(&mut self, dom: DomId, old: &[Mfn], order: u32) -> Result<Mfn, Errno> {
        let n = 1usize.checked_shl(order).ok_or(Errno::EINVAL)?;
        if old.len() != n {
            return Err(Errno::EINVAL);
        }
        for (k, &m) in old.iter().enumerate() {
            let f = self.frame(m).ok_or(Errno::EINVAL)?;
            let stealable = f.owner == dom
                && f.flags == flags::ALLOCATED
                && f.ref_count == 1
                && f.type_count == 0;
            if !stealable || old[..k].contains(&m) {
                return Err(Errno::EINVAL);
            }
        }
        if self.free_count < self.hv_reserve + n as u64 {
            return Err(Errno::ENOMEM);
        }
        let nr = self.frames.len();
        let start = (0..nr.saturating_sub(n - 1))
            .step_by(n)
            .find(|&s| (s..s + n).all(|i| self.is_free(i)))
            .ok_or(Errno::ENOMEM)?;
        self.work = self.work.wrapping_add(nr as u64 / 8);
        for i in start..start + n {
            self.unlink_free(i as u32);
        }
        for &m in old {
            self.domain_release(dom, m)?;
        }
        for i in start..start + n {
            self.frames[i] = FrameInfo {
                owner: dom,
                flags: flags::ALLOCATED,
                ref_count: 1,
                tlb_stamp: self.frames[i].tlb_stamp,
                ..FrameInfo::RESERVED
            };
            self.list_insert(dom, i as u32);
        }
        Ok(Mfn(start as u64))
    }

    /// Takes a frame off the free lists for a new owner, a scrubbed one first: first out of
    /// every TLB that may still translate to it from its previous life (the TLB rule, see
    /// `tlb`). Returns the frame and whether it is known to be zero.
    fn pop_free(&mut self) -> Option<(u32, bool)> {
        let i = if self.clean_head != NO_FRAME { self.clean_head } else { self.free_head };
        if i == NO_FRAME {
            return None;
        }
        Some((i, self.unlink_free(i)))
    }

    /// Records that a mapping of (or the last type reference on) frame `i` just went.
    pub(super) fn stamp(&mut self, i: usize) {
        self.frames[i].tlb_stamp = self.tlb.clock();
    }

    /// Keeps the last `frames` free frames for the hypervisor itself.
    pub fn set_hv_reserve(&mut self, frames: u64) {
        self.hv_reserve = frames;
    }

    /// Whether a frame may go to a guest's use now (it would not eat the hypervisor's reserve).
    fn guest_may_take(&self) -> bool {
        self.free_count > self.hv_reserve
    }

    /// Takes a free frame for the hypervisor to share with a guest (its shared_info, its grant
    /// table): like a guest's own allocation, it stops short of the hypervisor's reserve.
    pub fn alloc_shared_frame(&mut self) -> Option<Mfn> {
        if !self.guest_may_take() {
            return None;
        }
        self.alloc_xen_frame()
    }

    /// Takes a free frame for the hypervisor itself (owner `DOMID_XEN`).
    pub fn alloc_xen_frame(&mut self) -> Option<Mfn> {
        let (i, _) = self.pop_free()?;
        let stamp = self.frames[i as usize].tlb_stamp;
        self.frames[i as usize] =
            FrameInfo { ref_count: 1, tlb_stamp: stamp, ..FrameInfo::RESERVED };
        Some(Mfn(i.into()))
    }

    /// Returns a frame from [`Mm::alloc_xen_frame`].
    pub fn free_xen_frame(&mut self, mfn: Mfn) {
        if let Some(i) = self.idx(mfn) {
            debug_assert_eq!(self.frames[i].owner, DomId::XEN);
            self.push_free(i as u32);
        }
    }

    /// Starts accounting for a new domain.
    pub fn domain_create(
        &mut self,
        dom: DomId,
        max_pages: u64,
        is_privileged: bool,
    ) -> Result<(), Errno> {
        if self.doms.contains_key(&dom) {
            return Err(Errno::EEXIST);
        }
        self.doms.insert(
            dom,
            DomMem {
                tot_pages: 0,
                xen_pages: 0,
                max_pages,
                is_privileged,
                is_dying: false,
                head: NO_FRAME,
            },
        );
        Ok(())
    }

    /// The accounting of a domain.
    pub fn domain(&self, dom: DomId) -> Option<&DomMem> {
        self.doms.get(&dom)
    }

    /// Changes a domain's ceiling (never below what it has).
    pub fn set_max_pages(&mut self, dom: DomId, max_pages: u64) -> Result<(), Errno> {
        let d = self.doms.get_mut(&dom).ok_or(Errno::ESRCH)?;
        d.max_pages = max_pages;
        Ok(())
    }

    /// Allocates one frame to `dom`, within its `max_pages`, as it is (see
    /// [`Mm::domain_alloc_zeroed`] for memory a guest is given).
    pub fn domain_alloc(&mut self, dom: DomId) -> Result<Mfn, Errno> {
        self.alloc_to(dom).map(|(mfn, _)| mfn)
    }

    /// Allocates one frame to `dom` and makes sure it is zero: a scrubbed frame as it is, a
    /// dirty one through `zero`.
    pub fn domain_alloc_zeroed(
        &mut self,
        dom: DomId,
        zero: impl FnOnce(Mfn),
    ) -> Result<Mfn, Errno> {
        let (mfn, clean) = self.alloc_to(dom)?;
        if !clean {
            zero(mfn);
        }
        Ok(mfn)
    }

    fn alloc_to(&mut self, dom: DomId) -> Result<(Mfn, bool), Errno> {
        let d = self.doms.get(&dom).ok_or(Errno::ESRCH)?;
        if d.is_dying || d.tot_pages >= d.max_pages || !self.guest_may_take() {
            return Err(Errno::ENOMEM);
        }
        let (i, clean) = self.pop_free().ok_or(Errno::ENOMEM)?;
        self.frames[i as usize] = FrameInfo {
            owner: dom,
            flags: flags::ALLOCATED,
            ref_count: 1,
            tlb_stamp: self.frames[i as usize].tlb_stamp,
            ..FrameInfo::RESERVED
        };
        self.list_insert(dom, i);
        Ok((Mfn(i.into()), clean))
    }

    /// Turns a hypervisor frame into one shared with `dom` (its shared_info page): the domain
    /// may map it, cannot release it, and it is freed with the domain.
    pub fn share_xen_frame(&mut self, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        if !self.doms.contains_key(&dom) || self.frames[i].owner != DomId::XEN {
            return Err(Errno::EINVAL);
        }
        self.frames[i] = FrameInfo {
            owner: dom,
            flags: flags::ALLOCATED | flags::XEN_HEAP,
            ref_count: 1,
            tlb_stamp: self.frames[i].tlb_stamp,
            ..FrameInfo::RESERVED
        };
        self.list_insert(dom, i as u32);
        Ok(())
    }

    /// Gives up the domain's allocation reference on `mfn` (decrease_reservation, domain
    /// destruction). The frame is freed now if nothing else uses it, or when the last user
    /// drops its reference.
    pub fn domain_release(&mut self, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        let f = self.frames[i];
        if f.owner != dom || !f.has(flags::ALLOCATED) {
            return Err(Errno::EINVAL);
        }
        if f.has(flags::XEN_HEAP) && self.doms.contains_key(&dom) && !self.is_dying(dom) {
            return Err(Errno::EPERM);
        }
        self.frames[i].flags &= !flags::ALLOCATED;
        self.put_page(mfn);
        Ok(())
    }

    /// A guest gives a frame back (XENMEM_decrease_reservation). Refused while the frame is a
    /// page table (EBUSY): the guest must unpin and unhook it first; otherwise the allocation
    /// reference goes and the frame is freed once nothing else uses it.
    pub fn guest_remove_page(&mut self, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
        let f = *self.frame(mfn).ok_or(Errno::EINVAL)?;
        if f.owner != dom {
            return Err(Errno::EINVAL);
        }
        if f.ptype.level().is_some() && f.type_count > 0 {
            return Err(Errno::EBUSY);
        }
        self.domain_release(dom, mfn)
    }

    fn is_dying(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.is_dying)
    }

    /// Takes a general reference on `mfn` on behalf of `dom`: the frame must belong to `dom`.
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        let f = &mut self.frames[i];
        if f.owner != dom || f.ref_count == 0 {
            return Err(Errno::EPERM);
        }
        f.ref_count = f.ref_count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
        Ok(())
    }

    /// Drops a general reference; the last one frees the frame.
    pub fn put_page(&mut self, mfn: Mfn) {
        let Some(i) = self.idx(mfn) else { return };
        let f = &mut self.frames[i];
        debug_assert!(f.ref_count > 0, "put_page underflow on {mfn:?}");
        f.ref_count = f.ref_count.saturating_sub(1);
        if f.ref_count == 0 {
            debug_assert_eq!(f.type_count, 0);
            let owner = f.owner;
            if self.doms.contains_key(&owner) {
                self.list_remove(owner, i as u32);
            }
            self.push_free(i as u32);
        }
    }

    /// Forgets a domain's accounting once it owns nothing.
    pub fn domain_forget(&mut self, dom: DomId) -> bool {
        if self.doms.get(&dom).is_some_and(|d| d.tot_pages == 0 && d.xen_pages == 0) {
            self.doms.remove(&dom);
            return true;
        }
        false
    }

    fn list_insert(&mut self, dom: DomId, i: u32) {
        let is_xen = self.frames[i as usize].has(flags::XEN_HEAP);
        let d = self.doms.get_mut(&dom).expect("domain accounted");
        let head = d.head;
        d.head = i;
        if is_xen {
            d.xen_pages += 1;
        } else {
            d.tot_pages += 1;
        }
        self.frames[i as usize].prev = NO_FRAME;
        self.frames[i as usize].next = head;
        if head != NO_FRAME {
            self.frames[head as usize].prev = i;
        }
    }

    fn list_remove(&mut self, dom: DomId, i: u32) {
        let is_xen = self.frames[i as usize].has(flags::XEN_HEAP);
        let d = self.doms.get_mut(&dom).expect("domain accounted");
        unlink(self.frames, &mut d.head, i);
        if is_xen {
            d.xen_pages -= 1;
        } else {
            d.tot_pages -= 1;
        }
    }

    /// The first dying domain with id at or after `from` whose frames have all come back
    /// (nothing maps them any more).
    pub fn next_drained_dying(&self, from: DomId) -> Option<DomId> {
        self.doms
            .range(from..)
            .find(|(_, d)| d.is_dying && d.tot_pages == 0 && d.xen_pages == 0)
            .map(|(id, _)| *id)
    }

    /// Marks a domain as dying: it can allocate nothing more and its shared pages may go.
    pub fn domain_mark_dying(&mut self, dom: DomId) {
        if let Some(d) = self.doms.get_mut(&dom) {
            d.is_dying = true;
        }
    }
}
