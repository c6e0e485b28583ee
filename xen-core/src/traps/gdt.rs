//! A guest's global descriptor table: `set_gdt` (frames of descriptors, each checked and typed
//! a descriptor page, so the guest can no longer write them) and `update_descriptor` (one
//! checked descriptor at a machine address), as Xen has them. The CPU's GDT holds the running
//! vCPU's descriptors below the hypervisor's reserved entries: copied in at every switch to
//! the vCPU and after each change (a copy of checked descriptors, where Xen maps the frames).

use hypercall_abi::{Errno, Mfn};

use crate::arch::cpu;
use crate::domain::{GDT_MAX_FRAMES, VcpuContext};
use crate::hypercall::{Hc, HcResult, copy_in};
use crate::mm::PageType;
use crate::mm::descriptor::check_descriptor;
use crate::mm::machine::{self, DirectPageMem, with_mm};
use crate::sched::switch;

/// Entries a guest GDT may have: those below the hypervisor's (`FIRST_RESERVED_GDT_ENTRY`).
const MAX_ENTRIES: u64 = (GDT_MAX_FRAMES * 512) as u64;

/// `set_gdt(frame_list, entries)`: the guest's frames become its GDT, each one checked and
/// typed a descriptor page first; the previous table's frames are let go. All or nothing.
pub fn set_gdt(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (list, entries) = (a[0], a[1]);
    if entries > MAX_ENTRIES {
        return Err(Errno::EINVAL);
    }
    let nr = (entries as usize).div_ceil(512);
    let mut frames = [Mfn(0); GDT_MAX_FRAMES];
    for (i, f) in frames[..nr].iter_mut().enumerate() {
        *f = Mfn(copy_in::<u64>(list + i as u64 * 8)?);
    }
    let dom = hc.dom.id;
    for i in 0..nr {
        let r = with_mm(|mm| {
            mm.get_page_and_type(&mut DirectPageMem, frames[i], PageType::SegDesc, dom)
        });
        if let Err(e) = r {
            with_mm(|mm| {
                frames[..i].iter().for_each(|&f| mm.put_page_and_type(&mut DirectPageMem, f))
            });
            return Err(e);
        }
    }
    release(hc.ctx);
    hc.ctx.gdt_frames = frames;
    hc.ctx.gdt_ents = entries as u32;
    switch::load_gdt(hc.ctx);
    Ok(Some(0))
}

/// Lets go of the frames of `ctx`'s GDT (a new table, or the vCPU's end).
pub fn release(ctx: &mut VcpuContext) {
    let old = ctx.gdt_frames;
    let nr = ctx.gdt().len();
    ctx.gdt_ents = 0;
    with_mm(|mm| old[..nr].iter().for_each(|&f| mm.put_page_and_type(&mut DirectPageMem, f)));
}

/// `update_descriptor(maddr, desc)`: writes one descriptor, checked, at a machine address of
/// the guest's: in a descriptor page (its GDT) or in a page it may write.
pub fn update_descriptor(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (maddr, desc) = (a[0], a[1]);
    if !maddr.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let desc = check_descriptor(desc).ok_or(Errno::EINVAL)?;
    let (mfn, index) = (Mfn(maddr >> 12), ((maddr & 0xFFF) / 8) as usize);
    let dom = hc.dom.id;
    with_mm(|mm| {
        mm.get_page(mfn, dom)?;
        // A descriptor page stays one (another type reference); any other page must be one
        // the guest could write.
        let ty = match mm.frame(mfn).map(|f| (f.ptype, f.type_count)) {
            Some((PageType::SegDesc, n)) if n > 0 => PageType::SegDesc,
            _ => PageType::Writable,
        };
        if let Err(e) = mm.get_page_type(&mut DirectPageMem, mfn, ty, dom) {
            mm.put_page(mfn);
            return Err(e);
        }
        machine::write_frame(mfn, index * 8, &desc.to_le_bytes());
        mm.put_page_and_type(&mut DirectPageMem, mfn);
        Ok(())
    })?;
    // The running vCPU's own table: its copy in the CPU changes too.
    if let Some(page) = hc.ctx.gdt().iter().position(|&f| f == mfn) {
        cpu::update_guest_gdt_entry(page * 512 + index, desc);
    }
    Ok(Some(0))
}
