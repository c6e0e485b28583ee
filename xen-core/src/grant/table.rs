//! A domain's grant table as the hypervisor keeps it: the v1 entry frames, shared with the
//! domain like shared_info (it writes its grants there, at any moment), and the bookkeeping
//! of who holds which of its refs (`rules::Book`). An entry is read and claimed with one
//! compare-and-swap on the shared word, so the granter cannot change it between check and
//! use. Knows nothing of domains beyond their ids: `Domain` holds one of these.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use hypercall_abi::grant_table::*;
use hypercall_abi::{DomId, Errno, Mfn};

use super::rules::{self, Book, Entry};
use crate::mm::machine::{self, with_mm};
use crate::mm::quota::{HeapQuota, try_grow};

/// Most grant-table frames a domain may have (512 entries each): Xen's default
/// (`gnttab_max_frames`), which guests read through `query_size`.
pub const MAX_FRAMES: u32 = 64;
/// Most grant mappings a domU may hold at once (dom0's back ends get more).
pub const MAX_MAPS_DOMU: usize = 4096;
pub const MAX_MAPS_DOM0: usize = 65536;
pub(super) const ENTRIES_PER_FRAME: u32 = GNTTAB_ENTRIES_PER_FRAME_V1;

/// A domain's grant table.
pub struct GrantTable {
    pub(super) frames: Vec<Mfn>,
    pub(super) book: Book,
    quota: Arc<HeapQuota>,
    /// Bytes of `quota` the frame list holds.
    charged: usize,
}

impl GrantTable {
    /// An empty table charging `quota`; room for the frame list is taken now, so growing the
    /// table later allocates nothing but the frames and the book's entries.
    pub fn new(quota: Arc<HeapQuota>, max_maps: usize) -> Result<Self, Errno> {
        let mut frames = Vec::new();
        let charged = try_grow(&mut frames, MAX_FRAMES as usize, &quota)?;
        let book = Book::new(max_maps, quota.clone());
        Ok(GrantTable { frames, book, quota, charged })
    }
}

impl Drop for GrantTable {
    fn drop(&mut self) {
        self.quota.uncharge(self.charged);
    }
}

/// Grows the table of domain `owner` to `nr` frames (shared with it, zeroed).
pub fn grow(owner: DomId, gt: &mut GrantTable, nr: u32) -> Result<(), i16> {
    if nr > MAX_FRAMES {
        return Err(GNTST_GENERAL_ERROR);
    }
    gt.book.grow_active((nr * ENTRIES_PER_FRAME) as usize)?;
    while (gt.frames.len() as u32) < nr {
        let mfn = with_mm(|mm| mm.alloc_shared_frame()).ok_or(GNTST_NO_SPACE)?;
        machine::zero_frame(mfn);
        if with_mm(|mm| mm.share_xen_frame(mfn, owner)).is_err() {
            with_mm(|mm| mm.free_xen_frame(mfn));
            return Err(GNTST_GENERAL_ERROR);
        }
        gt.frames.push(mfn);
    }
    Ok(())
}

/// The shared entry word of `gref` (bounds checked: guest input).
pub(super) fn entry_word(
    gt: &GrantTable,
    gref: u32,
) -> Result<&'static core::sync::atomic::AtomicU64, i16> {
    let frame = gt.frames.get((gref / ENTRIES_PER_FRAME) as usize).ok_or(GNTST_BAD_GNTREF)?;
    Ok(machine::frame_word(*frame, (gref % ENTRIES_PER_FRAME) as usize))
}

/// Claims `gref` of `granter` for `to`: atomically checks the entry and sets reading/writing,
/// retrying a bounded number of times if the granter is changing it concurrently.
fn claim_entry(gt: &GrantTable, gref: u32, to: DomId, readonly: bool) -> Result<Entry, i16> {
    let word = entry_word(gt, gref)?;
    for _ in 0..4 {
        let old = Entry(word.load(Ordering::SeqCst));
        let new = rules::claim(old, to, readonly)?;
        if word.compare_exchange(old.0, new.0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return Ok(new);
        }
    }
    Err(GNTST_EAGAIN)
}

pub(super) fn clear_flags(gt: &GrantTable, gref: u32, mask: u16) {
    if mask != 0
        && let Ok(w) = entry_word(gt, gref)
    {
        w.fetch_and(!u64::from(mask), Ordering::SeqCst);
    }
}

/// Claims `gref` in `g` for `to` and pins it in the granter's book; returns the granted frame.
/// A claim that cannot be pinned (the entry now names another frame than the live mappings)
/// is undone, clearing only the flags no other pin still needs.
pub(super) fn claim_and_pin(
    g: &mut GrantTable,
    gref: u32,
    to: DomId,
    readonly: bool,
) -> Result<Mfn, i16> {
    let frame = claim_entry(g, gref, to, readonly)?.frame();
    if let Err(s) = g.book.pin(gref, frame, readonly) {
        clear_flags(g, gref, g.book.unclaimed_mask(gref));
        return Err(s);
    }
    Ok(frame)
}
