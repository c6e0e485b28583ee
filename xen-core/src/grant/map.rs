//! Grant mappings: GNTTABOP_map_grant_ref and unmap_grant_ref, what a dying domain's
//! mappings give back, and the grants the hypervisor writes for a domain it builds.
//!
//! A grant mapping is an ordinary validated L1 entry naming the granter's frame: it holds the
//! same references any mapping holds, so the frame cannot be freed while mapped, even if the
//! granter dies (invariant 4), and a page table of the granter can never be mapped writable
//! through a grant (invariant 2). Grant locks are taken granter first, then mapper, after any
//! vCPU context and before `MM`.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use hypercall_abi::grant_table::*;
use hypercall_abi::{DomId, Mfn};

use super::rules::{Entry, MapEntry};
use super::table::{ENTRIES_PER_FRAME, GrantTable, claim_and_pin, clear_flags, entry_word, grow};
use crate::arch::paging;
use crate::domain::{self, Domain};
use crate::mm::machine::{self, DirectPageMem, with_mm};
use crate::mm::types::{PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER, pte_mfn};
use crate::mm::{MapCtx, PageMem};

/// Writes entry `gref` of a domain the hypervisor builds (its console and XenStore grants).
pub fn seed_entry(d: &Domain, gref: u32, to: DomId, frame: Mfn, readonly: bool) -> Result<(), i16> {
    let mut gt = d.grants.lock();
    grow(d.id, &mut gt, gref / ENTRIES_PER_FRAME + 1)?;
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    entry_word(&gt, gref)?.store(Entry::new(flags, to, frame.0 as u32).0, Ordering::SeqCst);
    Ok(())
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
    machine::live_l1(root, va).ok()
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
    // A host mapping (a PTE in the mapper's page tables), a device mapping (the frame held for
    // a device: a PV domain's bus address is the machine address), or both, as on Xen.
    let host = op.flags & GNTMAP_HOST_MAP != 0;
    let device = op.flags & GNTMAP_DEVICE_MAP != 0;
    if !(host || device) || op.flags & GNTMAP_CONTAINS_PTE != 0 {
        return Err(GNTST_GENERAL_ERROR);
    }
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let granter = domain::get(op.dom)
        .filter(|g| g.state() == domain::DomState::Running)
        .ok_or(GNTST_BAD_DOMAIN)?;
    let slot =
        if host { Some(l1_slot(root, op.host_addr).ok_or(GNTST_BAD_VIRT_ADDR)?) } else { None };
    let gref = op.gref.0;
    with_two(&granter, mapper, |g, m| {
        let frame = claim_and_pin(g, gref, mapper.id, readonly)?;
        let release = |g: &mut GrantTable| {
            let mask = g.book.unpin(gref, readonly);
            clear_flags(g, gref, mask);
        };
        // The guest's own marks (GNTMAP_guest_avail*, XENFEAT_gnttab_map_avail_bits) go to the
        // PTE's three software-available bits 9-11: Linux tags its grant mappings there.
        let avail = u64::from((op.flags & GNTMAP_GUEST_AVAIL_MASK) >> 16) & 7;
        let pte = (frame.0 << 12)
            | PTE_PRESENT
            | PTE_USER
            | PTE_ACCESSED
            | PTE_DIRTY
            | (avail << 9)
            | if readonly { 0 } else { PTE_RW };
        let ctx = MapCtx { dom: mapper.id, foreign: Some(granter.id) };
        let undo = |g: &mut GrantTable, mapped: bool, held: bool| {
            if let (true, Some((l1, index))) = (mapped, slot) {
                let _ = with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, 0, ctx, false));
            }
            if held {
                with_mm(|mm| mm.put_page(frame));
            }
            release(g);
        };
        if let Some((l1, index)) = slot
            && with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, pte, ctx, false))
                .is_err()
        {
            release(g);
            return Err(GNTST_BAD_PAGE);
        }
        if device && with_mm(|mm| mm.get_page(frame, granter.id)).is_err() {
            undo(g, true, false);
            return Err(GNTST_BAD_PAGE);
        }
        let book = match m {
            Some(m) => &mut m.book,
            None => &mut g.book,
        };
        let host_addr = if host { op.host_addr } else { 0 };
        let entry = MapEntry { granter: granter.id, gref, frame, host_addr, readonly, device };
        match book.add_map(entry) {
            Ok(h) => {
                op.dev_bus_addr = frame.0 << 12;
                Ok(h)
            }
            Err(s) => {
                undo(g, true, device);
                Err(s)
            }
        }
    })
}

/// GNTTABOP_unmap_grant_ref for `mapper`.
pub fn unmap(mapper: &Arc<Domain>, root: Mfn, op: &mut GnttabUnmapGrantRef) {
    op.status = match unmap_inner(mapper, root, op.handle.0, op.host_addr, op.dev_bus_addr, None) {
        Ok(()) => GNTST_OKAY,
        Err(s) => s,
    };
}

/// GNTTABOP_unmap_and_replace for `mapper`: the mapping at `host_addr` goes, and the entry
/// now at `new_addr` takes its place (`new_addr` is then unmapped), as Xen does.
pub fn unmap_and_replace(mapper: &Arc<Domain>, root: Mfn, op: &mut GnttabUnmapAndReplace) {
    op.status = if op.host_addr == 0 {
        GNTST_GENERAL_ERROR
    } else {
        match unmap_inner(mapper, root, op.handle.0, op.host_addr, 0, Some(op.new_addr)) {
            Ok(()) => GNTST_OKAY,
            Err(s) => s,
        }
    };
}

fn unmap_inner(
    mapper: &Arc<Domain>,
    root: Mfn,
    handle: u32,
    host_addr: u64,
    dev_bus_addr: u64,
    replace_with: Option<u64>,
) -> Result<(), i16> {
    let m = mapper.grants.lock().book.map(handle)?;
    if host_addr != 0 && host_addr != m.host_addr {
        return Err(GNTST_GENERAL_ERROR);
    }
    // As on Xen, a host mapping goes only when its address is named: with host_addr 0 it
    // stays, handle and all, and the call succeeds having done nothing (a stray unmap of a
    // small handle must not take a back end's ring away from under it).
    if host_addr == 0 && m.host_addr != 0 && !m.device {
        return Ok(());
    }
    if dev_bus_addr != 0 && (!m.device || dev_bus_addr != m.frame.0 << 12) {
        return Err(GNTST_BAD_DEV_ADDR);
    }
    let own = MapCtx { dom: mapper.id, foreign: None };
    // The replacing entry, read before anything changes (it must be a live L1 slot).
    let replacement = match replace_with {
        Some(va) => {
            let (l1, index) = l1_slot(root, va).ok_or(GNTST_GENERAL_ERROR)?;
            Some((l1, index, va, PageMem::read_pte(&DirectPageMem, l1, index)))
        }
        None => None,
    };
    // Replace the PTE if it still maps the granted frame (the guest may have overwritten it,
    // in which case the references went with that write).
    if m.host_addr != 0
        && let Some((l1, index)) = l1_slot(root, m.host_addr)
    {
        let cur = PageMem::read_pte(&DirectPageMem, l1, index);
        if cur & PTE_PRESENT != 0 && pte_mfn(cur) == m.frame {
            let ctx = MapCtx { dom: mapper.id, foreign: Some(m.granter) };
            let new = replacement.map_or(0, |r| r.3);
            let ctx = if new & PTE_PRESENT != 0 { own } else { ctx };
            with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, new, ctx, false))
                .map_err(|_| GNTST_GENERAL_ERROR)?;
            paging::invlpg(m.host_addr);
        }
    }
    if let Some((l1, index, va, _)) = replacement {
        let _ = with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, 0, own, false));
        paging::invlpg(va);
    }
    if m.device {
        with_mm(|mm| mm.put_page(m.frame));
    }
    release_map(mapper, handle, &m);
    domain::reap();
    Ok(())
}

/// Forgets a mapping and unpins the granted ref (if its granter is still alive).
fn release_map(mapper: &Arc<Domain>, handle: u32, m: &MapEntry) {
    let _ = mapper.grants.lock().book.remove_map(handle);
    unpin_at_granter(m);
}

/// Unpins the ref a mapping held at its granter, if the granter is still alive.
fn unpin_at_granter(m: &MapEntry) {
    if let Some(g) = domain::get(m.granter) {
        let mut gt = g.grants.lock();
        let mask = gt.book.unpin(m.gref, m.readonly);
        clear_flags(&gt, m.gref, mask);
    }
}

/// A domain is being destroyed: the refs it mapped are unpinned at their granters (its page
/// tables, and the references they hold, go with its memory), and its own table's frames go
/// with its memory too.
/// Allocates nothing (a dying domain may be dying because memory ran out): the book is taken
/// out whole, read in place, then freed.
pub fn domain_destroyed(d: &Arc<Domain>) {
    let book = {
        let mut gt = d.grants.lock();
        let empty = gt.book.empty_like();
        core::mem::replace(&mut gt.book, empty)
    };
    for (_, m) in book.maps() {
        if m.device {
            with_mm(|mm| mm.put_page(m.frame));
        }
        unpin_at_granter(&m);
    }
}
