//! Page-table hypercalls: `mmu_update`, `update_va_mapping` and `mmuext_op`. Each request is
//! copied in once, then checked and applied by the validator (`types`) under the MM
//! lock. Batches are bounded per entry: after `BATCH` requests the hypercall is restarted
//! with the rest (the guest's rip moves back to the `syscall`), so a huge count neither
//! hogs the CPU nor loops without end.

use hypercall_abi::mmu::{
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT_INVLPG_ALL,
    MMUEXT_INVLPG_LOCAL, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE, MmuUpdate, MmuextOp, UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use hypercall_abi::{DomId, Errno, Mfn};
use zerocopy::IntoBytes;

use super::machine::{self, DirectPageMem, with_mm};
use super::{MapCtx, PageType};
use crate::arch::{paging, uaccess};
use crate::domain;
use crate::hypercall::{Hc, HcResult, copy_in, copy_out, restart};

/// Requests handled per hypercall entry before restarting.
const BATCH: u64 = 512;
/// Requests copied in at once.
const CHUNK: usize = 32;
/// Marks a restarted batch in the count argument, so `done` accumulates.
const PREEMPTED: u64 = 1 << 31;

/// The domain whose frames a request names: the caller, or (privileged callers only) the
/// `foreigndom` argument.
fn foreign_ctx(hc: &Hc<'_>, foreigndom: u64) -> Result<MapCtx, Errno> {
    let fd = DomId(foreigndom as u16);
    if foreigndom > u64::from(u16::MAX) {
        return Err(Errno::EINVAL);
    }
    if fd == DomId::SELF_ || fd == hc.dom.id {
        return Ok(MapCtx { dom: hc.dom.id, foreign: None });
    }
    if !hc.dom.is_privileged {
        return Err(Errno::EPERM);
    }
    if fd != DomId::IO && domain::get(fd).is_none() {
        return Err(Errno::ESRCH);
    }
    Ok(MapCtx { dom: hc.dom.id, foreign: Some(fd) })
}

/// Page-table entries validated or devalidated per hypercall entry before restarting, however
/// few requests that took: one request can hook a whole tree of tables, and each table is 512
/// entries to check. (One request alone still validates the tree it names to the end.)
const WORK_BUDGET: u64 = 64 * 1024;

/// The validator's running work count, for [`over_budget`].
pub fn work_now() -> u64 {
    with_mm(|mm| mm.work)
}

/// Whether the validator has done a restart's worth of work since `work0`.
pub fn over_budget(work0: u64) -> bool {
    with_mm(|mm| mm.work).wrapping_sub(work0) >= WORK_BUDGET
}

/// `mmu_update(reqs, count, done, foreigndom)`.
pub fn mmu_update(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (reqs, count_arg, done_ptr, foreigndom) = (a[0], a[1], a[2], a[3]);
    let count = count_arg & !PREEMPTED & 0xFFFF_FFFF;
    let ctx = foreign_ctx(hc, foreigndom)?;
    let mut done_before = 0u32;
    if count_arg & PREEMPTED != 0 && done_ptr != 0 {
        done_before = copy_in::<u32>(done_ptr)?;
    }
    let n = count.min(BATCH);
    let mut result = Ok(());
    let mut i = 0;
    let work0 = with_mm(|mm| mm.work);
    // Requests are copied in chunks (one guest access each), then applied one by one.
    let mut chunk = [MmuUpdate::default(); CHUNK];
    'outer: while i < n {
        let k = (n - i).min(CHUNK as u64) as usize;
        if let Err(e) = uaccess::copy_from_guest(chunk[..k].as_mut_bytes(), reqs + i * 16) {
            result = Err(e);
            break;
        }
        for req in &chunk[..k] {
            if let Err(e) = apply_update(hc, req, ctx) {
                result = Err(e);
                break 'outer;
            }
            i += 1;
            if over_budget(work0) {
                break 'outer;
            }
        }
    }
    let done = done_before.wrapping_add(i as u32);
    if done_ptr != 0 {
        copy_out(done_ptr, &done)?;
    }
    result?;
    if count > i {
        return restart(
            hc,
            hypercall_abi::nr::MMU_UPDATE,
            &[reqs + i * 16, (count - i) | PREEMPTED, done_ptr, foreigndom],
        );
    }
    Ok(Some(0))
}

fn apply_update(hc: &Hc<'_>, req: &MmuUpdate, ctx: MapCtx) -> Result<(), Errno> {
    let addr = req.ptr & !3;
    let table = Mfn(addr >> 12);
    let index = ((addr & 0xFFF) / 8) as usize;
    match req.ptr & 3 {
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD => {
            if !addr.is_multiple_of(8) {
                return Err(Errno::EINVAL);
            }
            let preserve = req.ptr & 3 == MMU_PT_UPDATE_PRESERVE_AD;
            with_mm(|mm| mm.update_entry(&mut DirectPageMem, table, index, req.val, ctx, preserve))
        }
        MMU_MACHPHYS_UPDATE => with_mm(|mm| {
            let owner = mm.frame(table).map(|f| f.owner).ok_or(Errno::EINVAL)?;
            if owner != hc.dom.id && ctx.foreign != Some(owner) {
                return Err(Errno::EPERM);
            }
            mm.set_m2p(table, req.val);
            Ok(())
        }),
        _ => Err(Errno::ENOSYS),
    }
}

/// Replaces the PTE that maps `va` under `root` with `pte`, validated for `ctx`.
fn update_l1(root: Mfn, va: u64, pte: u64, ctx: MapCtx) -> Result<(), Errno> {
    let (l1, index) = machine::live_l1(root, va)?;
    with_mm(|mm| mm.update_entry(&mut DirectPageMem, l1, index, pte, ctx, false))
}

/// `update_va_mapping(va, pte, flags)`: replaces the PTE mapping `va` in the current
/// (kernel) page table, then flushes as asked.
pub fn update_va_mapping(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (va, pte, flags) = (a[0], a[1], a[2]);
    update_l1(hc.ctx.guest_table, va, pte, MapCtx { dom: hc.dom.id, foreign: None })?;
    match flags & UVMF_FLUSHTYPE_MASK {
        UVMF_TLB_FLUSH => paging::flush_tlb_local(),
        UVMF_INVLPG => paging::invlpg(va),
        _ => {}
    }
    Ok(Some(0))
}

/// `update_va_mapping_otherdomain(va, pte, flags, domid)` (dom0): the same in another
/// domain's (kernel) page table, with that domain's frames.
pub fn update_va_mapping_otherdomain(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (va, pte, flags, dom) = (a[0], a[1], a[2], DomId(a[3] as u16));
    if a[3] > u64::from(u16::MAX) {
        return Err(Errno::EINVAL);
    }
    let d = domain::target_domain(hc.dom, dom)?;
    // The caller's own vCPU context is already locked for this hypercall: for itself, use it.
    let root = if d.id == hc.dom.id {
        hc.ctx.guest_table
    } else {
        d.vcpus.first().map(|v| v.ctx.lock().guest_table).ok_or(Errno::ESRCH)?
    };
    update_l1(root, va, pte, MapCtx { dom: d.id, foreign: None })?;
    if flags & UVMF_FLUSHTYPE_MASK != 0 {
        paging::flush_tlb_local();
    }
    Ok(Some(0))
}

/// `mmuext_op(ops, count, done, foreigndom)`.
pub fn mmuext_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (ops, count_arg, done_ptr, foreigndom) = (a[0], a[1], a[2], a[3]);
    let count = count_arg & !PREEMPTED & 0xFFFF_FFFF;
    let ctx = foreign_ctx(hc, foreigndom)?;
    let mut done_before = 0u32;
    if count_arg & PREEMPTED != 0 && done_ptr != 0 {
        done_before = copy_in::<u32>(done_ptr)?;
    }
    let n = count.min(BATCH);
    let mut result = Ok(());
    let mut i = 0;
    let work0 = with_mm(|mm| mm.work);
    while i < n {
        let op: MmuextOp = match copy_in(ops + i * 24) {
            Ok(o) => o,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if let Err(e) = apply_ext(hc, &op, ctx.foreign) {
            result = Err(e);
            break;
        }
        i += 1;
        if over_budget(work0) {
            break;
        }
    }
    if done_ptr != 0 {
        copy_out(done_ptr, &done_before.wrapping_add(i as u32))?;
    }
    result?;
    if count > i {
        return restart(
            hc,
            hypercall_abi::nr::MMUEXT_OP,
            &[ops + i * 24, (count - i) | PREEMPTED, done_ptr, foreigndom],
        );
    }
    Ok(Some(0))
}

/// Makes the L4 at `mfn` the vCPU's kernel base table (`MMUEXT_NEW_BASEPTR`, and a guest's
/// `mov %cr3`): validated and referenced, the old one released.
pub fn new_baseptr(ctx: &mut domain::VcpuContext, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
    with_mm(|mm| mm.get_page_and_type(&mut DirectPageMem, mfn, PageType::L4, dom))?;
    let old = core::mem::replace(&mut ctx.guest_table, mfn);
    if old.0 != 0 {
        with_mm(|mm| mm.put_page_and_type(&mut DirectPageMem, old));
    }
    if ctx.kernel_mode {
        paging::load_cr3(mfn.0 << 12);
    }
    Ok(())
}

/// One extended op; pins and unpins act on `foreign`'s tables when the (privileged) caller
/// named a foreign domain, as Xen's toolstack pins a new domain's L4.
fn apply_ext(hc: &mut Hc<'_>, op: &MmuextOp, foreign: Option<DomId>) -> Result<(), Errno> {
    let dom = hc.dom.id;
    let owner = foreign.filter(|&f| f != DomId::IO).unwrap_or(dom);
    let mfn = Mfn(op.arg1);
    match op.cmd {
        c @ MMUEXT_PIN_L1_TABLE..=MMUEXT_PIN_L4_TABLE => with_mm(|mm| {
            mm.pin(&mut DirectPageMem, mfn, (c - MMUEXT_PIN_L1_TABLE + 1) as u8, owner)
        }),
        MMUEXT_UNPIN_TABLE => with_mm(|mm| mm.unpin(&mut DirectPageMem, mfn, owner)),
        MMUEXT_NEW_BASEPTR => new_baseptr(hc.ctx, dom, mfn),
        MMUEXT_NEW_USER_BASEPTR => {
            if mfn.0 != 0 {
                with_mm(|mm| mm.get_page_and_type(&mut DirectPageMem, mfn, PageType::L4, dom))?;
            }
            let old = core::mem::replace(&mut hc.ctx.guest_table_user, mfn);
            if old.0 != 0 {
                with_mm(|mm| mm.put_page_and_type(&mut DirectPageMem, old));
            }
            Ok(())
        }
        MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => {
            paging::flush_tlb_local();
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL => {
            paging::invlpg(op.arg1);
            Ok(())
        }
        // No LDT support yet: only "no LDT" is accepted (see docs/MEMORY.md).
        MMUEXT_SET_LDT if op.arg2 == 0 => Ok(()),
        MMUEXT_SET_LDT => Err(Errno::ENOSYS),
        _ => Err(Errno::ENOSYS),
    }
}
