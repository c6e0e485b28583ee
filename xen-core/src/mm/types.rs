//! Page types and page-table validation: the rules that keep a PV guest, which writes its own
//! page tables, from mapping anything it should not. A frame becomes an L1-L4 table only by
//! validation, which takes a reference on everything its entries name; it stays a table while
//! its type count is above zero; when the count drops to zero every entry's reference is
//! dropped again ("devalidation").
//!
//! What an entry may point at (the list `docs/MEMORY.md` documents):
//! - L4 entries name L3 tables, L3 entries L2 tables, L2 entries L1 tables, all owned by the
//!   same domain. No large pages (PSE) and no linear/recursive tables: a table's frame already
//!   has its own type, so it cannot also be validated at another level or as a data page.
//! - L1 entries name data frames the domain owns (a general reference; plus a `Writable` type
//!   reference when RW, which a frame typed as a page table cannot get: invariant 2), frames it
//!   was explicitly allowed to map (`foreign`: dom0 mapping a guest's frames), or, for a
//!   privileged domain, I/O memory (frames the table marks `DOMID_IO` or beyond RAM), with or
//!   without `foreigndom = DOMID_IO`, except the device pages the hypervisor drives itself
//!   (`Mm::deny_io`: the local APIC and IOAPIC). `DOMID_IO` never names RAM.
//! - L4 slots 256-271 belong to the hypervisor: validation writes the hypervisor's entries
//!   there whatever the guest put (invariant 3), and they are never taken as guest entries.
//! - Present entries get `_PAGE_USER` forced, as Xen does for 64-bit PV guests (the guest
//!   kernel runs in ring 3), and `_PAGE_GLOBAL` cleared: a global guest mapping would survive
//!   the CR3 switch to another domain and leak the frame to it. Bits 52-62 (ignored by the
//!   CPU) may be set in L1 entries, as on Xen, and must be zero above; frames beyond RAM are I/O.

use hypercall_abi::{DomId, Errno, Mfn};

use super::descriptor::check_descriptor;
use super::frame::{Mm, PageType, flags};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_RW: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_PSE: u64 = 1 << 7;
pub const PTE_GLOBAL: u64 = 1 << 8;
pub const PTE_NX: u64 = 1 << 63;
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Bits no guest entry above L1 may set (available-to-software high bits and protection keys).
const PTE_RESERVED_HIGH: u64 = 0x7FF0_0000_0000_0000;
/// First and one-past-last hypervisor L4 slot.
pub const XEN_SLOT_FIRST: usize = 256;
pub const XEN_SLOT_END: usize = 272;
pub const ENTRIES: usize = 512;

/// Access to page-table frames by machine frame number.
pub trait PageMem {
    fn read_pte(&self, table: Mfn, index: usize) -> u64;
    fn write_pte(&mut self, table: Mfn, index: usize, value: u64);
}

pub fn pte_mfn(pte: u64) -> Mfn {
    Mfn((pte & PTE_ADDR_MASK) >> 12)
}

fn is_xen_slot(level: u8, index: usize) -> bool {
    level == 4 && (XEN_SLOT_FIRST..XEN_SLOT_END).contains(&index)
}

/// Who an entry is being validated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapCtx {
    /// The domain that owns the table.
    pub dom: DomId,
    /// For L1 entries: the domain whose frames may be mapped instead (dom0's foreign maps).
    pub foreign: Option<DomId>,
}

impl Mm<'_> {
    /// Takes a type reference of type `ty` on `mfn` for `dom`, validating the frame as a page
    /// table if it is not one already. The frame's owner must be `dom`.
    pub fn get_page_type(
        &mut self,
        mem: &mut impl PageMem,
        mfn: Mfn,
        ty: PageType,
        dom: DomId,
    ) -> Result<(), Errno> {
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        let f = self.frames[i];
        if f.owner != dom || f.ref_count == 0 {
            return Err(Errno::EPERM);
        }
        if f.type_count > 0 {
            if f.ptype != ty {
                return Err(Errno::EINVAL);
            }
            self.frames[i].type_count = f.type_count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
            return Ok(());
        }
        // A new role for the frame (anything but writable data staying writable data): no
        // TLB may still translate to it from its old one (the TLB rule, see `tlb`). Flushed
        // before validation, so not even the hypervisor's own accesses see a stale entry.
        if ty != PageType::Writable || f.ptype != PageType::Writable {
            self.tlb.flush_stale(f.tlb_stamp);
        }
        // Claim the type before looking at the entries, so an entry naming this very frame
        // (a linear page table) sees the type and is refused.
        self.frames[i].ptype = ty;
        self.frames[i].type_count = 1;
        let validated = match ty {
            PageType::SegDesc => Self::validate_descriptors(mem, mfn),
            _ => match ty.level() {
                Some(level) => self.validate_table(mem, mfn, level, dom),
                None => Ok(()),
            },
        };
        if let Err(e) = validated {
            self.frames[i].ptype = PageType::None;
            self.frames[i].type_count = 0;
            return Err(e);
        }
        Ok(())
    }

    /// Drops a type reference; the last one on a page table devalidates it.
    pub fn put_page_type(&mut self, mem: &mut impl PageMem, mfn: Mfn) {
        let Some(i) = self.idx(mfn) else { return };
        let f = self.frames[i];
        debug_assert!(f.type_count > 0, "put_page_type underflow on {mfn:?}");
        if f.type_count == 0 {
            return;
        }
        self.frames[i].type_count -= 1;
        if f.type_count == 1 {
            self.stamp(i);
            if let Some(level) = f.ptype.level() {
                self.devalidate_table(mem, mfn, level);
                self.frames[i].ptype = PageType::None;
            }
        }
    }

    /// A general and a type reference together (pinning, CR3).
    pub fn get_page_and_type(
        &mut self,
        mem: &mut impl PageMem,
        mfn: Mfn,
        ty: PageType,
        dom: DomId,
    ) -> Result<(), Errno> {
        self.get_page(mfn, dom)?;
        if let Err(e) = self.get_page_type(mem, mfn, ty, dom) {
            self.put_page(mfn);
            return Err(e);
        }
        Ok(())
    }

    pub fn put_page_and_type(&mut self, mem: &mut impl PageMem, mfn: Mfn) {
        self.put_page_type(mem, mfn);
        self.put_page(mfn);
    }

    fn validate_table(
        &mut self,
        mem: &mut impl PageMem,
        mfn: Mfn,
        level: u8,
        dom: DomId,
    ) -> Result<(), Errno> {
        let ctx = MapCtx { dom, foreign: None };
        self.work = self.work.wrapping_add(ENTRIES as u64);
        for index in 0..ENTRIES {
            if is_xen_slot(level, index) {
                mem.write_pte(mfn, index, self.xen_l4[index - XEN_SLOT_FIRST]);
                continue;
            }
            let pte = mem.read_pte(mfn, index);
            match self.get_entry_refs(mem, level, pte, ctx) {
                Ok(adjusted) => {
                    if adjusted != pte {
                        mem.write_pte(mfn, index, adjusted);
                    }
                }
                Err(e) => {
                    for undo in (0..index).rev() {
                        if !is_xen_slot(level, undo) {
                            let old = mem.read_pte(mfn, undo);
                            self.put_entry_refs(mem, level, old);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A frame becoming a descriptor page: every descriptor must pass, fixed up in place
    /// (`descriptor::check_descriptor`). Nothing to undo on failure: a descriptor page holds
    /// no references.
    fn validate_descriptors(mem: &mut impl PageMem, mfn: Mfn) -> Result<(), Errno> {
        for index in 0..ENTRIES {
            let d = mem.read_pte(mfn, index);
            let fixed = check_descriptor(d).ok_or(Errno::EINVAL)?;
            if fixed != d {
                mem.write_pte(mfn, index, fixed);
            }
        }
        Ok(())
    }

    fn devalidate_table(&mut self, mem: &mut impl PageMem, mfn: Mfn, level: u8) {
        self.work = self.work.wrapping_add(ENTRIES as u64);
        for index in 0..ENTRIES {
            if !is_xen_slot(level, index) {
                let pte = mem.read_pte(mfn, index);
                self.put_entry_refs(mem, level, pte);
            }
        }
    }

    /// Checks a guest entry for a level-`level` table and takes the references it needs.
    /// Returns the entry as it will be stored (`_PAGE_USER` forced on).
    pub fn get_entry_refs(
        &mut self,
        mem: &mut impl PageMem,
        level: u8,
        pte: u64,
        ctx: MapCtx,
    ) -> Result<u64, Errno> {
        if pte & PTE_PRESENT == 0 {
            return Ok(pte);
        }
        // Bits 52-62 are the software's: the CPU ignores them (protection keys stay off).
        // Xen lets a guest keep its own marks there in L1 entries (Linux has some), not above.
        if level > 1 && pte & (PTE_RESERVED_HIGH | PTE_PSE) != 0 {
            return Err(Errno::EINVAL);
        }
        let target = pte_mfn(pte);
        let stored = (pte | PTE_USER) & !PTE_GLOBAL;
        if level > 1 {
            let ty = PageType::table(level - 1).ok_or(Errno::EINVAL)?;
            self.get_page_and_type(mem, target, ty, ctx.dom)?;
            return Ok(stored);
        }
        let f = self.frame(target).copied();
        if f.is_none_or(|f| f.owner == DomId::IO) {
            // I/O memory (beyond RAM, or marked DOMID_IO): as on Xen, whether the request
            // named DOMID_IO or not, the caller's own I/O privilege decides, and the device
            // pages the hypervisor drives are nobody's. Not reference counted.
            return if self.is_privileged(ctx.dom) && !self.is_denied_io(target) {
                Ok(stored)
            } else {
                Err(Errno::EPERM)
            };
        }
        let Some(f) = f else { return Err(Errno::EPERM) };
        if ctx.foreign == Some(DomId::IO) {
            // DOMID_IO names I/O memory only, never a domain's RAM.
            return Err(Errno::EPERM);
        }
        let owner = if f.owner == ctx.dom { ctx.dom } else { ctx.foreign.ok_or(Errno::EPERM)? };
        self.get_page(target, owner)?;
        if pte & PTE_RW != 0
            && let Err(e) = self.get_page_type(mem, target, PageType::Writable, owner)
        {
            self.put_page(target);
            return Err(e);
        }
        Ok(stored)
    }

    /// Drops the references a validated entry holds.
    pub fn put_entry_refs(&mut self, mem: &mut impl PageMem, level: u8, pte: u64) {
        if pte & PTE_PRESENT == 0 {
            return;
        }
        let target = pte_mfn(pte);
        let Some(i) = self.idx(target) else { return };
        let f = self.frames[i];
        if f.owner == DomId::IO {
            return;
        }
        // The entry goes, a TLB entry made from it may stay (the guest flushes when it likes).
        self.stamp(i);
        if level > 1 || pte & PTE_RW != 0 {
            self.put_page_type(mem, target);
        }
        self.put_page(target);
    }

    fn is_privileged(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.is_privileged)
    }

    /// Replaces entry `index` of the table `table` (owned by `ctx.dom`) with `new`, as
    /// `mmu_update` does: if `table` is a validated page table the new entry is validated and
    /// the old one's references dropped; otherwise the frame is an ordinary page of the
    /// domain's and the write is a plain store (it must be writable-typeable).
    pub fn update_entry(
        &mut self,
        mem: &mut impl PageMem,
        table: Mfn,
        index: usize,
        new: u64,
        ctx: MapCtx,
        preserve_ad: bool,
    ) -> Result<(), Errno> {
        let i = self.idx(table).ok_or(Errno::EINVAL)?;
        if index >= ENTRIES {
            return Err(Errno::EINVAL);
        }
        let f = self.frames[i];
        if f.owner != ctx.dom {
            return Err(Errno::EPERM);
        }
        let level = match (f.type_count, f.ptype.level()) {
            (n, Some(level)) if n > 0 => level,
            _ => {
                // Not a page table: a data write into a page the domain may write.
                self.get_page_type(mem, table, PageType::Writable, ctx.dom)?;
                mem.write_pte(table, index, new);
                self.put_page_type(mem, table);
                return Ok(());
            }
        };
        if is_xen_slot(level, index) {
            return Err(Errno::EPERM);
        }
        let old = mem.read_pte(table, index);
        let mut new = new;
        if preserve_ad {
            new |= old & (PTE_ACCESSED | PTE_DIRTY);
        }
        let stored = self.get_entry_refs(mem, level, new, ctx)?;
        mem.write_pte(table, index, stored);
        self.put_entry_refs(mem, level, old);
        Ok(())
    }

    /// Pins `mfn` as a level-`level` table of `dom` (MMUEXT_PIN_Lx_TABLE).
    pub fn pin(
        &mut self,
        mem: &mut impl PageMem,
        mfn: Mfn,
        level: u8,
        dom: DomId,
    ) -> Result<(), Errno> {
        let ty = PageType::table(level).ok_or(Errno::EINVAL)?;
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        if self.frames[i].owner != dom {
            return Err(Errno::EPERM);
        }
        if self.frames[i].has(flags::PINNED) {
            return Err(Errno::EINVAL);
        }
        self.get_page_and_type(mem, mfn, ty, dom)?;
        self.frames[i].flags |= flags::PINNED;
        Ok(())
    }

    /// Unpins a table pinned by [`Mm::pin`] (MMUEXT_UNPIN_TABLE).
    pub fn unpin(&mut self, mem: &mut impl PageMem, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
        let i = self.idx(mfn).ok_or(Errno::EINVAL)?;
        let f = self.frames[i];
        if f.owner != dom {
            return Err(Errno::EPERM);
        }
        if !f.has(flags::PINNED) {
            return Err(Errno::EINVAL);
        }
        self.frames[i].flags &= !flags::PINNED;
        self.put_page_and_type(mem, mfn);
        Ok(())
    }

    /// Takes everything back from a dying domain: its pins, the base tables its vCPUs held
    /// (`roots`, one reference each), and its allocation references. Frames another domain
    /// still maps stay alive (owned by `dom`) until that domain lets go.
    pub fn domain_relinquish(&mut self, mem: &mut impl PageMem, dom: DomId, roots: &[Mfn]) {
        self.domain_mark_dying(dom);
        for &root in roots {
            self.put_page_and_type(mem, root);
        }
        // Both passes walk the frame table rather than the domain's page list: dropping a pin
        // can free frames of the list under a walk (a page the guest gave back while a table
        // still mapped it), and a copy of the list is 8 bytes per page, more than the
        // hypervisor's heap holds for a large domain. A frame freed ahead of the scan no longer
        // belongs to `dom` when the scan reaches it.
        for i in 0..self.frames.len() {
            if self.frames[i].owner == dom && self.frames[i].has(flags::PINNED) {
                let _ = self.unpin(mem, Mfn(i as u64), dom);
            }
        }
        for i in 0..self.frames.len() {
            let f = &self.frames[i];
            if f.owner == dom && f.has(flags::ALLOCATED) {
                let _ = self.domain_release(dom, Mfn(i as u64));
            }
        }
    }
}
