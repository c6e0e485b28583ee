//! Grant tables v1 on the hypervisor side: the shared entry frames each domain gets (shared
//! with it like shared_info), and the operations that read them: map, unmap, copy, setup,
//! query. The rules and bookkeeping are `xen_core::grant`.
//!
//! A grant mapping is an ordinary validated L1 entry naming the granter's frame: it holds the
//! same references any mapping holds, so the frame cannot be freed while mapped, even if the
//! granter dies (invariant 4), and a page table of the granter can never be mapped writable
//! through a grant (invariant 2). Grant locks are taken granter first, then mapper, after any
//! vCPU context and before `MM`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use hypercall_abi::grant_table::*;
use hypercall_abi::{DomId, Errno, Mfn};
use xen_core::grant::{self, Book, Entry, MapEntry};
use xen_core::mm::MapCtx;
use xen_core::mm::types::{PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER, pte_mfn};

use super::domain::{self, Domain};
use super::mem::{self, DirectPageMem, with_mm};

/// Most grant-table frames a domain may have (512 entries each).
pub const MAX_FRAMES: u32 = 32;
/// Most grant mappings one domain may hold at once.
const MAX_MAPS: usize = 4096;
const ENTRIES_PER_FRAME: u32 = GNTTAB_ENTRIES_PER_FRAME_V1;

/// A domain's grant table.
pub struct GrantTable {
    frames: Vec<Mfn>,
    book: Book,
}

impl GrantTable {
    pub fn new() -> Self {
        GrantTable { frames: Vec::new(), book: Book::new(MAX_MAPS) }
    }
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Grows `d`'s table to `nr` frames (shared with `d`, zeroed).
pub fn grow(d: &Domain, gt: &mut GrantTable, nr: u32) -> Result<(), i16> {
    if nr > MAX_FRAMES {
        return Err(GNTST_GENERAL_ERROR);
    }
    while (gt.frames.len() as u32) < nr {
        let mfn = with_mm(|mm| mm.alloc_xen_frame()).ok_or(GNTST_NO_SPACE)?;
        mem::zero_frame(mfn);
        if with_mm(|mm| mm.share_xen_frame(mfn, d.id)).is_err() {
            with_mm(|mm| mm.free_xen_frame(mfn));
            return Err(GNTST_GENERAL_ERROR);
        }
        gt.frames.push(mfn);
    }
    Ok(())
}

/// The shared entry word of `gref` (bounds checked: guest input).
fn entry_word(gt: &GrantTable, gref: u32) -> Result<&'static core::sync::atomic::AtomicU64, i16> {
    let frame = gt.frames.get((gref / ENTRIES_PER_FRAME) as usize).ok_or(GNTST_BAD_GNTREF)?;
    Ok(mem::frame_word(*frame, (gref % ENTRIES_PER_FRAME) as usize))
}

/// Writes entry `gref` of a domain the hypervisor builds (its console and XenStore grants).
pub fn seed_entry(d: &Domain, gref: u32, to: DomId, frame: Mfn, readonly: bool) -> Result<(), i16> {
    let mut gt = d.grants.lock();
    grow(d, &mut gt, gref / ENTRIES_PER_FRAME + 1)?;
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    entry_word(&gt, gref)?.store(Entry::new(flags, to, frame.0 as u32).0, Ordering::SeqCst);
    Ok(())
}

/// Claims `gref` of `granter` for `to`: atomically checks the entry and sets reading/writing,
/// retrying a bounded number of times if the granter is changing it concurrently.
fn claim_entry(gt: &GrantTable, gref: u32, to: DomId, readonly: bool) -> Result<Entry, i16> {
    let word = entry_word(gt, gref)?;
    for _ in 0..4 {
        let old = Entry(word.load(Ordering::SeqCst));
        let new = grant::claim(old, to, readonly)?;
        if word.compare_exchange(old.0, new.0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return Ok(new);
        }
    }
    Err(GNTST_EAGAIN)
}

fn clear_flags(gt: &GrantTable, gref: u32, mask: u16) {
    if mask != 0
        && let Ok(w) = entry_word(gt, gref)
    {
        w.fetch_and(!u64::from(mask), Ordering::SeqCst);
    }
}

/// Claims `gref` in `g` for `to` and pins it in the granter's book; returns the granted frame.
/// A claim that cannot be pinned (the entry now names another frame than the live mappings)
/// is undone, clearing only the flags no other pin still needs.
fn claim_and_pin(g: &mut GrantTable, gref: u32, to: DomId, readonly: bool) -> Result<Mfn, i16> {
    let frame = claim_entry(g, gref, to, readonly)?.frame();
    if let Err(s) = g.book.pin(gref, frame, readonly) {
        clear_flags(g, gref, g.book.unclaimed_mask(gref));
        return Err(s);
    }
    Ok(frame)
}

/// Runs `f` with the granter's and the mapper's tables locked (one lock when they are the same
/// domain). Two tables are taken in domain-id order, so a map each way between two domains on
/// two CPUs cannot deadlock.
fn with_two<R>(
    granter: &Domain,
    mapper: &Domain,
    f: impl FnOnce(&mut GrantTable, Option<&mut GrantTable>) -> R,
) -> R {
    if granter.id == mapper.id {
        return f(&mut granter.grants.lock(), None);
    }
    if granter.id.0 < mapper.id.0 {
        let mut g = granter.grants.lock();
        let mut m = mapper.grants.lock();
        f(&mut g, Some(&mut m))
    } else {
        let mut m = mapper.grants.lock();
        let mut g = granter.grants.lock();
        f(&mut g, Some(&mut m))
    }
}

/// The live L1 table and slot that map page-aligned `va` in the L4 `root`.
fn l1_slot(root: Mfn, va: u64) -> Option<(Mfn, usize)> {
    if !va.is_multiple_of(4096) {
        return None;
    }
    mem::live_l1(root, va).ok()
}

/// GNTTABOP_map_grant_ref for `mapper` (whose kernel page table is `root`).
pub fn map(mapper: &Arc<Domain>, root: Mfn, op: &mut GnttabMapGrantRef) {
    op.status = match map_inner(mapper, root, op) {
        Ok(handle) => {
            op.handle = GrantHandle(handle);
            GNTST_OKAY
        }
        Err(s) => s,
    };
}

fn map_inner(mapper: &Arc<Domain>, root: Mfn, op: &mut GnttabMapGrantRef) -> Result<u32, i16> {
    if op.flags & GNTMAP_HOST_MAP == 0 || op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_CONTAINS_PTE) != 0
    {
        return Err(GNTST_GENERAL_ERROR);
    }
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let granter = domain::get(op.dom)
        .filter(|g| g.state() == domain::DomState::Running)
        .ok_or(GNTST_BAD_DOMAIN)?;
    let (l1, index) = l1_slot(root, op.host_addr).ok_or(GNTST_BAD_VIRT_ADDR)?;
    let gref = op.gref.0;
    with_two(&granter, mapper, |g, m| {
        let frame = claim_and_pin(g, gref, mapper.id, readonly)?;
        let release = |g: &mut GrantTable| {
            let mask = g.book.unpin(gref, readonly);
            clear_flags(g, gref, mask);
        };
        let pte = (frame.0 << 12)
            | PTE_PRESENT
            | PTE_USER
            | PTE_ACCESSED
            | PTE_DIRTY
            | if readonly { 0 } else { PTE_RW };
        let ctx = MapCtx { dom: mapper.id, foreign: Some(granter.id) };
        if with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, pte, ctx, false)).is_err() {
            release(g);
            return Err(GNTST_BAD_PAGE);
        }
        let book = match m {
            Some(m) => &mut m.book,
            None => &mut g.book,
        };
        let entry =
            MapEntry { granter: granter.id, gref, frame, host_addr: op.host_addr, readonly };
        match book.add_map(entry) {
            Ok(h) => {
                op.dev_bus_addr = frame.0 << 12;
                Ok(h)
            }
            Err(s) => {
                let _ = with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, 0, ctx, false));
                release(g);
                Err(s)
            }
        }
    })
}

/// GNTTABOP_unmap_grant_ref for `mapper`.
pub fn unmap(mapper: &Arc<Domain>, root: Mfn, op: &mut GnttabUnmapGrantRef) {
    op.status = match unmap_inner(mapper, root, op.handle.0, op.host_addr) {
        Ok(()) => GNTST_OKAY,
        Err(s) => s,
    };
}

fn unmap_inner(mapper: &Arc<Domain>, root: Mfn, handle: u32, host_addr: u64) -> Result<(), i16> {
    let m = mapper.grants.lock().book.map(handle)?;
    if host_addr != 0 && host_addr != m.host_addr {
        return Err(GNTST_GENERAL_ERROR);
    }
    // Clear the PTE if it still maps the granted frame (the guest may have overwritten it, in
    // which case the references went with that write).
    if let Some((l1, index)) = l1_slot(root, m.host_addr) {
        let cur = xen_core::mm::PageMem::read_pte(&DirectPageMem, l1, index);
        if cur & PTE_PRESENT != 0 && pte_mfn(cur) == m.frame {
            let ctx = MapCtx { dom: mapper.id, foreign: Some(m.granter) };
            let _ = with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, 0, ctx, false));
            super::arch::paging::invlpg(m.host_addr);
        }
    }
    release_map(mapper, handle, &m);
    domain::reap();
    Ok(())
}

/// Forgets a mapping and unpins the granted ref (if its granter is still alive).
fn release_map(mapper: &Arc<Domain>, handle: u32, m: &MapEntry) {
    let _ = mapper.grants.lock().book.remove_map(handle);
    if let Some(g) = domain::get(m.granter) {
        let mut gt = g.grants.lock();
        let mask = gt.book.unpin(m.gref, m.readonly);
        clear_flags(&gt, m.gref, mask);
    }
}

/// A domain is being destroyed: the refs it mapped are unpinned at their granters (its page
/// tables, and the references they hold, go with its memory), and its own table's frames go
/// with its memory too.
pub fn domain_destroyed(d: &Arc<Domain>) {
    let maps: Vec<(u32, MapEntry)> = d.grants.lock().book.maps().collect();
    for (h, m) in maps {
        release_map(d, h, &m);
    }
}

/// GNTTABOP_copy: copies between frames named by grant refs (the other domain must have
/// granted us access, write access for a destination) or by our own frame numbers.
pub fn copy(caller: &Arc<Domain>, op: &mut GnttabCopy) {
    op.status = match copy_inner(caller, op) {
        Ok(()) => GNTST_OKAY,
        Err(s) => s,
    };
}

struct Side {
    frame: Mfn,
    held: Option<(Arc<Domain>, u32, bool)>,
}

fn resolve(
    caller: &Arc<Domain>,
    p: &GnttabCopyPtr,
    is_gref: bool,
    readonly: bool,
) -> Result<Side, i16> {
    if is_gref {
        let g = domain::get(p.domid)
            .filter(|g| g.state() == domain::DomState::Running)
            .ok_or(GNTST_BAD_DOMAIN)?;
        let gref = p.as_gref().0;
        let frame = claim_and_pin(&mut g.grants.lock(), gref, caller.id, readonly)?;
        let owned = with_mm(|mm| mm.frame(frame).is_some_and(|f| f.owner == g.id));
        let side = Side { frame, held: Some((g, gref, readonly)) };
        if !owned {
            unhold(&side);
            return Err(GNTST_BAD_PAGE);
        }
        Ok(side)
    } else {
        if p.domid != DomId::SELF_ && p.domid != caller.id {
            return Err(GNTST_PERMISSION_DENIED);
        }
        let frame = Mfn(p.u);
        if !with_mm(|mm| mm.frame(frame).is_some_and(|f| f.owner == caller.id)) {
            return Err(GNTST_BAD_PAGE);
        }
        Ok(Side { frame, held: None })
    }
}

fn unhold(s: &Side) {
    if let Some((g, gref, ro)) = &s.held {
        let mut gt = g.grants.lock();
        let mask = gt.book.unpin(*gref, *ro);
        clear_flags(&gt, *gref, mask);
    }
}

fn copy_inner(caller: &Arc<Domain>, op: &GnttabCopy) -> Result<(), i16> {
    let len = usize::from(op.len);
    let (so, dof) = (usize::from(op.source.offset), usize::from(op.dest.offset));
    if so + len > 4096 || dof + len > 4096 {
        return Err(GNTST_BAD_COPY_ARG);
    }
    let src = resolve(caller, &op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, true)?;
    let dst = match resolve(caller, &op.dest, op.flags & GNTCOPY_DEST_GREF != 0, false) {
        Ok(d) => d,
        Err(s) => {
            unhold(&src);
            return Err(s);
        }
    };
    // A destination that is a page table must never be written through a copy.
    let dst_ok = with_mm(|mm| {
        mm.frame(dst.frame).is_some_and(|f| f.ptype.level().is_none() || f.type_count == 0)
    });
    if dst_ok && len > 0 {
        mem::copy_frame_range(src.frame, so, dst.frame, dof, len);
    }
    unhold(&src);
    unhold(&dst);
    if dst_ok { Ok(()) } else { Err(GNTST_BAD_PAGE) }
}

/// GNTTABOP_setup_table: grows the caller's (or, for dom0, any domain's) table and reports
/// the frames' machine numbers.
pub fn setup_table(caller: &Arc<Domain>, op: &mut GnttabSetupTable) -> Result<(), Errno> {
    let d = match super::events::target_domain(caller, op.dom) {
        Ok(d) => d,
        Err(_) => {
            op.status = GNTST_BAD_DOMAIN;
            return Ok(());
        }
    };
    let frames = {
        let mut gt = d.grants.lock();
        if let Err(s) = grow(&d, &mut gt, op.nr_frames) {
            op.status = s;
            return Ok(());
        }
        gt.frames[..op.nr_frames as usize].to_vec()
    };
    for (i, f) in frames.iter().enumerate() {
        super::hypercall::copy_out(op.frame_list.raw() + i as u64 * 8, &f.0)?;
    }
    op.status = GNTST_OKAY;
    Ok(())
}

/// GNTTABOP_query_size.
pub fn query_size(caller: &Arc<Domain>, op: &mut GnttabQuerySize) {
    match super::events::target_domain(caller, op.dom) {
        Ok(d) => {
            op.nr_frames = d.grants.lock().frames.len() as u32;
            op.max_nr_frames = MAX_FRAMES;
            op.status = GNTST_OKAY;
        }
        Err(_) => op.status = GNTST_BAD_DOMAIN,
    }
}
