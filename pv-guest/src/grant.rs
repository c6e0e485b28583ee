//! Grant tables from the kernel's side: its own table (frames set up by the hypervisor and
//! mapped here) to give other domains access to its pages, and maps/unmaps/copies of other
//! domains' grants. Refs 0-7 are reserved (console 0, XenStore 1); refs are handed out from 8.

use core::sync::atomic::{AtomicU32, Ordering};

use hypercall_abi::grant_table::*;
use hypercall_abi::guest;
use hypercall_abi::{DomId, GrantRef, Mfn};
use spin::Once;

use crate::memory::pages;
use crate::memory::shared::SharedPage;

static TABLE: Once<SharedPage> = Once::new();
static TABLE_FRAME: Once<Mfn> = Once::new();
static NEXT_REF: AtomicU32 = AtomicU32::new(GNTTAB_NR_RESERVED_ENTRIES);

/// Sets up and maps the first frame of this domain's grant table (512 entries).
pub fn init() -> Result<(), i16> {
    let mut frames = [Mfn(0)];
    if let Err(e) = guest::gnttab_setup_table(DomId::SELF_, &mut frames) {
        crate::println!("guest: GNTTABOP_setup_table: {e:?}");
        return Err(GNTST_GENERAL_ERROR);
    }
    let page = pages::map_frame(frames[0]).ok_or(GNTST_NO_SPACE)?;
    TABLE.call_once(|| page);
    TABLE_FRAME.call_once(|| frames[0]);
    Ok(())
}

/// The machine frame of this domain's grant table (shared with it by the hypervisor).
pub fn table_frame() -> Option<Mfn> {
    TABLE_FRAME.get().copied()
}

fn table() -> SharedPage {
    *TABLE.get().expect("grant::init ran")
}

/// A fresh grant ref.
pub fn alloc_ref() -> Option<GrantRef> {
    let r = NEXT_REF.fetch_add(1, Ordering::Relaxed);
    (r < GNTTAB_ENTRIES_PER_FRAME_V1).then_some(GrantRef(r))
}

/// Lets `dom` access `frame` through `gref`. The flags go in last, so the hypervisor never
/// sees a valid entry with a stale frame or domid.
pub fn grant_access(gref: GrantRef, dom: DomId, frame: Mfn, readonly: bool) {
    let t = table();
    let off = gref.0 as usize * 8;
    t.u32_at(off + 4).store(frame.0 as u32, Ordering::Relaxed);
    t.u8_at(off + 2).store(dom.0 as u8, Ordering::Relaxed);
    t.u8_at(off + 3).store((dom.0 >> 8) as u8, Ordering::Relaxed);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    core::sync::atomic::fence(Ordering::Release);
    t.u8_at(off).store(flags as u8, Ordering::Release);
}

/// Ends access through `gref` unless it is in use (reading/writing set): true if ended.
pub fn end_access(gref: GrantRef) -> bool {
    let w = table().u64_at(gref.0 as usize * 8);
    let cur = w.load(Ordering::SeqCst);
    if cur as u16 & (GTF_READING | GTF_WRITING) != 0 {
        return false;
    }
    w.compare_exchange(cur, cur & !0xFFFF, Ordering::SeqCst, Ordering::SeqCst).is_ok()
}

/// A mapping of another domain's granted page, in a slot of its own. Not `Copy`: [`unmap`]
/// consumes it, so the page cannot be reached through it once it is gone.
#[derive(Debug)]
pub struct Mapping {
    page: SharedPage,
    handle: GrantHandle,
}

impl Mapping {
    /// The mapped page.
    pub fn page(&self) -> SharedPage {
        self.page
    }

    /// The hypervisor's handle for the mapping.
    pub fn handle(&self) -> GrantHandle {
        self.handle
    }
}

/// Maps `gref` of `dom` (read-only if asked) at a fresh slot; the status is the hypervisor's
/// GNTST_ code. A refused map gives the slot back.
pub fn map(dom: DomId, gref: GrantRef, readonly: bool) -> Result<Mapping, i16> {
    let va = pages::alloc_slot().ok_or(GNTST_NO_SPACE)?;
    let mut op = GnttabMapGrantRef {
        host_addr: va,
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        gref,
        dom,
        ..Default::default()
    };
    #[allow(unsafe_code)]
    // SAFETY: the op matches GNTTABOP_map_grant_ref and `va` is a slot from `alloc_slot`, which
    // nothing else in the kernel uses.
    let r =
        unsafe { guest::grant_table_op(GNTTABOP_MAP_GRANT_REF, core::slice::from_mut(&mut op)) };
    let status = if r.is_err() { GNTST_GENERAL_ERROR } else { op.status };
    if status != GNTST_OKAY {
        pages::free_slot(va);
        return Err(status);
    }
    #[allow(unsafe_code)]
    // SAFETY: the hypervisor mapped the granted frame at `va`; it is shared with the granter.
    let page = unsafe { SharedPage::new(va) };
    Ok(Mapping { page, handle: op.handle })
}

/// Several grants of one domain mapped at consecutive addresses (a multi-page ring). Not
/// `Copy`: [`unmap_run`] consumes it.
#[derive(Debug)]
pub struct MappedRun {
    va: u64,
    /// Slots taken (the run's length; `handles` may be shorter while it is being made).
    slots: u64,
    handles: alloc::vec::Vec<GrantHandle>,
}

impl MappedRun {
    /// Address of the first page.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// How many pages.
    pub fn pages(&self) -> usize {
        self.handles.len()
    }
}

/// Maps `grefs` of `dom` at consecutive slots (read-only if asked). On any refusal what was
/// mapped is unmapped again and the first failing status returned.
pub fn map_run(dom: DomId, grefs: &[GrantRef], readonly: bool) -> Result<MappedRun, i16> {
    if grefs.is_empty() {
        return Err(GNTST_GENERAL_ERROR);
    }
    let n = grefs.len() as u64;
    let va = pages::alloc_slot_run(n).ok_or(GNTST_NO_SPACE)?;
    let mut run = MappedRun { va, slots: n, handles: alloc::vec::Vec::with_capacity(grefs.len()) };
    for (i, &gref) in grefs.iter().enumerate() {
        let mut op = GnttabMapGrantRef {
            host_addr: va + 4096 * i as u64,
            flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
            gref,
            dom,
            ..Default::default()
        };
        #[allow(unsafe_code)]
        // SAFETY: the op matches GNTTABOP_map_grant_ref and its address is a slot of a run
        // from `alloc_slot_run`, which nothing else in the kernel uses.
        let r = unsafe {
            guest::grant_table_op(GNTTABOP_MAP_GRANT_REF, core::slice::from_mut(&mut op))
        };
        let status = if r.is_err() { GNTST_GENERAL_ERROR } else { op.status };
        if status != GNTST_OKAY {
            let _ = unmap_run(run);
            return Err(status);
        }
        run.handles.push(op.handle);
    }
    Ok(run)
}

/// Unmaps a run made by [`map_run`] and gives its slots back; if the hypervisor refuses any
/// unmap, the slots stay taken.
pub fn unmap_run(run: MappedRun) -> Result<(), i16> {
    let mut worst = GNTST_OKAY;
    for (i, &h) in run.handles.iter().enumerate() {
        #[allow(unsafe_code)]
        // SAFETY: `run` is consumed, so nothing reaches its pages after this.
        let status = unsafe { unmap_handle(run.va + 4096 * i as u64, h) };
        if status != GNTST_OKAY {
            worst = status;
        }
    }
    if worst != GNTST_OKAY {
        return Err(worst);
    }
    pages::free_slot_run(run.va, run.slots);
    Ok(())
}

/// Unmaps a mapping made by [`map`] and gives its slot back. If the hypervisor refuses, the
/// slot stays taken (what it maps is then unknown).
pub fn unmap(m: Mapping) -> Result<(), i16> {
    let va = m.page.va();
    #[allow(unsafe_code)]
    // SAFETY: `m` is consumed, so nothing reaches the page through it after this.
    let status = unsafe { unmap_handle(va, m.handle) };
    if status != GNTST_OKAY {
        return Err(status);
    }
    pages::free_slot(va);
    Ok(())
}

/// GNTTABOP_unmap_grant_ref of `handle` at `va`, as given; the hypervisor's status. For tests
/// of stale handles; everything else uses [`unmap`].
///
/// # Safety
///
/// No live [`Mapping`] may be at `va` with `handle`: its page would vanish under it.
#[allow(unsafe_code)]
pub unsafe fn unmap_handle(va: u64, handle: GrantHandle) -> i16 {
    let mut op = GnttabUnmapGrantRef { host_addr: va, handle, ..Default::default() };
    #[allow(unsafe_code)]
    // SAFETY: the op matches GNTTABOP_unmap_grant_ref; the caller vouches for the mapping.
    let r =
        unsafe { guest::grant_table_op(GNTTABOP_UNMAP_GRANT_REF, core::slice::from_mut(&mut op)) };
    if r.is_err() { GNTST_GENERAL_ERROR } else { op.status }
}

/// Which way [`copy`] moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDir {
    FromGrant,
    ToGrant,
}

/// One GNTTABOP_copy of `len` bytes between `page` (at `page_off`) and grant `gref` of `dom`
/// (at `gref_off`); the hypervisor's status. The frame on this side is always one of the
/// kernel's own pages, which are only accessed atomically, so the copy cannot write over
/// anything Rust code holds. Offsets and length go to the hypervisor as given (it refuses a
/// copy that runs off a page).
pub fn copy(
    page: &pages::OwnPage,
    page_off: u16,
    dom: DomId,
    gref: GrantRef,
    gref_off: u16,
    len: u16,
    dir: CopyDir,
) -> i16 {
    let mine = GnttabCopyPtr::gmfn(DomId::SELF_, page.mfn().into(), page_off);
    let theirs = GnttabCopyPtr::gref(dom, gref, gref_off);
    let mut op = match dir {
        CopyDir::FromGrant => GnttabCopy {
            source: theirs,
            dest: mine,
            len,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        },
        CopyDir::ToGrant => GnttabCopy {
            source: mine,
            dest: theirs,
            len,
            flags: GNTCOPY_DEST_GREF,
            ..Default::default()
        },
    };
    #[allow(unsafe_code)]
    // SAFETY: the op matches GNTTABOP_copy; this side is an own page (see above) and the other
    // is another domain's grant, not memory of this kernel.
    let r = unsafe { guest::grant_table_op(GNTTABOP_COPY, core::slice::from_mut(&mut op)) };
    if r.is_err() { GNTST_GENERAL_ERROR } else { op.status }
}
