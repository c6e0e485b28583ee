//! Writable page tables on the hardware (Xen's `ptwr`): a #PF from a guest kernel's write to
//! one of its own validated L1 tables, which it maps read-only, is emulated once the domain has
//! turned `VMASST_TYPE_writable_pagetables` on
//! (dom0: always, as on Xen). The entry is read once and the new one is
//! validated exactly as `mmu_update` validates it (`Mm::update_entry`, no A/D preservation:
//! the instruction's result is the entry, as on Xen), all under the MM lock, so the guest sees
//! the instruction happen atomically. Writes to L2-L4 tables, to tables of another domain,
//! refused entries and anything `ptwr` does not know are the guest's #PF, as on Xen.

use core::sync::atomic::Ordering;

use hypercall_abi::vm_assist::VMASST_TYPE_WRITABLE_PAGETABLES;

use super::decode::decode;
use super::hw::{fetch, read_gprs, write_gprs};
use super::ptwr;
use crate::arch::entry::GuestRegs;
use crate::domain::{Domain, VcpuContext};
use crate::mm::machine::{self, DirectPageMem, with_mm};
use crate::mm::types::{PTE_PRESENT, PTE_RW, pte_mfn};
use crate::mm::{MapCtx, PageMem, PageType};

/// Page-fault error code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_RESERVED: u64 = 8;
const PF_FETCH: u64 = 16;

/// Emulates the write that faulted at `cr2`, if it is a page-table write Xen would emulate;
/// false to deliver the #PF.
pub fn page_table_write(d: &Domain, ctx: &VcpuContext, regs: &mut GuestRegs, cr2: u64) -> bool {
    // Xen takes the hardware domain's read-only write faults down the same path whether or not
    // it asked for the assist (its read-only MMIO check comes first and falls through to it).
    let assist = d.vm_assist.load(Ordering::Relaxed) & (1 << VMASST_TYPE_WRITABLE_PAGETABLES) != 0
        || d.is_privileged;
    let ec = regs.error_code;
    if !assist
        || !ctx.kernel_mode
        || ec & (PF_PRESENT | PF_WRITE | PF_RESERVED | PF_FETCH) != PF_PRESENT | PF_WRITE
    {
        return false;
    }
    // The entry that maps the written address in the guest's kernel tables must be present
    // and read-only; the frame it names is the table written.
    let Ok((l1, index)) = machine::live_l1(ctx.guest_table, cr2) else { return false };
    let mapping = DirectPageMem.read_pte(l1, index);
    if mapping & (PTE_PRESENT | PTE_RW) != PTE_PRESENT {
        return false;
    }
    let table = pte_mfn(mapping);
    let (bytes, n) = fetch(regs.rip);
    let Some(insn) = decode(&bytes[..n]) else { return false };
    let gprs = read_gprs(regs);
    let Ok(write) = ptwr::plan(&insn, &gprs, regs.rip, cr2) else { return false };
    let done = with_mm(|mm| {
        let f = mm.frame(table)?;
        if f.owner != d.id || f.ptype != PageType::L1 || f.type_count == 0 {
            return None;
        }
        let old = DirectPageMem.read_pte(table, write.entry_index());
        let done = write.apply(old, &gprs, regs.rflags);
        if let Some(entry) = done.entry {
            let ctx = MapCtx { dom: d.id, foreign: None };
            mm.update_entry(&mut DirectPageMem, table, write.entry_index(), entry, ctx, false)
                .ok()?;
        }
        Some(done)
    });
    let Some(done) = done else { return false };
    write_gprs(regs, &done.gprs);
    regs.rflags = done.rflags;
    regs.rip = regs.rip.wrapping_add(u64::from(insn.len));
    true
}
