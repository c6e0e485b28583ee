//! A vCPU's state as the toolstack sees it: Xen's `vcpu_guest_context` to and from a
//! [`VcpuContext`], for `XEN_DOMCTL_setvcpucontext` and `getvcpucontext`. What a domain
//! builder sets (registers, the kernel stack, CR3 naming the pinned L4, callbacks, a trap
//! table, segment bases, FPU state, VM assists) is checked as the hypercalls that set each of
//! them one at a time check it; what this hypervisor has no way to give a vCPU through this
//! path (a GDT or an LDT, debug registers) must be empty and is refused otherwise.

use core::sync::atomic::Ordering;

use hypercall_abi::Errno;
use hypercall_abi::arch::{CpuUserRegs, TrapInfo};
use hypercall_abi::vcpu::{
    VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_I387_VALID, VGCF_IN_KERNEL, VGCF_ONLINE,
    VGCF_SYSCALL_DISABLES_EVENTS, VcpuGuestContext,
};
use hypercall_abi::{DomId, Mfn};

use super::{Callback, Domain, TrapEntry, Vcpu, VcpuContext};
use crate::arch::cpu::{GUEST_CS64, GUEST_DS};
use crate::arch::fpu::FxArea;
use crate::arch::uaccess;
use crate::mm::PageType;
use crate::mm::machine::{DirectPageMem, with_mm};
use crate::traps::callbacks::VM_ASSIST_VALID;

/// rflags bits a guest may set: the arithmetic flags, TF, DF, AC and ID. IF is always on (a
/// PV guest masks events in its vcpu_info), IOPL always 0 (`physdev_op(set_iopl)`).
const RFLAGS_GUEST: u64 = 0x0024_0DD5;
const RFLAGS_IF: u64 = 0x200;

fn guest_addr(va: u64) -> Result<u64, Errno> {
    if uaccess::is_guest_range(va, 1) { Ok(va) } else { Err(Errno::EINVAL) }
}

/// A guest selector with its RPL forced to 3, as Xen fixes them up; it must be `want`.
fn selector(sel: u16, want: u16) -> Result<u64, Errno> {
    if sel | 3 == want { Ok(u64::from(want)) } else { Err(Errno::EINVAL) }
}

/// Loads `c` into `v` (whose domain is `d`, paused and not yet running it): every field
/// checked first, then the new base tables referenced (the kernel one as an L4, as a
/// `new_baseptr` would), then the old ones released. The vCPU is up afterwards.
pub fn set(d: &Domain, v: &Vcpu, c: &VcpuGuestContext) -> Result<(), Errno> {
    if c.gdt_ents != 0 || c.ldt_ents != 0 || c.debugreg.iter().any(|&r| r != 0) {
        return Err(Errno::EINVAL);
    }
    let u = &c.user_regs;
    let cs = selector(u.cs, GUEST_CS64)?;
    let ss = selector(u.ss, GUEST_DS)?;
    let kernel_ss = if c.kernel_ss == 0 { 0 } else { selector(c.kernel_ss as u16, GUEST_DS)? };
    for va in [u.rip, u.rsp, c.kernel_sp, c.fs_base, c.gs_base_kernel, c.gs_base_user] {
        guest_addr(va)?;
    }
    let mut traps = [TrapEntry::default(); 256];
    for (slot, t) in traps.iter_mut().zip(c.trap_ctxt.iter()) {
        if t.address.0 != 0 {
            *slot = TrapEntry { flags: t.flags, cs: t.cs, address: guest_addr(t.address.0)? };
        }
    }
    let callback = |va: u64, mask_events: bool| {
        guest_addr(va).map(|address| Callback { address, mask_events })
    };
    let event = callback(c.event_callback_eip, true)?;
    let failsafe = callback(c.failsafe_callback_eip, c.flags & VGCF_FAILSAFE_DISABLES_EVENTS != 0)?;
    let syscall = callback(c.syscall_callback_eip, c.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0)?;
    if c.vm_assist & !VM_ASSIST_VALID != 0 {
        return Err(Errno::EINVAL);
    }
    let kernel_l4 = Mfn(c.ctrlreg[3] >> 12);
    let user_l4 = Mfn(c.ctrlreg[1] >> 12);
    if kernel_l4.0 == 0 {
        return Err(Errno::EINVAL);
    }
    take_l4(kernel_l4, d.id)?;
    if user_l4.0 != 0
        && let Err(e) = take_l4(user_l4, d.id)
    {
        with_mm(|mm| mm.put_page_and_type(&mut DirectPageMem, kernel_l4));
        return Err(e);
    }

    let mut ctx = v.ctx.lock();
    let old = (
        core::mem::replace(&mut ctx.guest_table, kernel_l4),
        core::mem::replace(&mut ctx.guest_table_user, user_l4),
    );
    set_regs(&mut ctx, u, cs, ss);
    ctx.kernel_mode = c.flags & VGCF_IN_KERNEL != 0;
    ctx.kernel_ss = kernel_ss;
    ctx.kernel_sp = c.kernel_sp;
    ctx.fs_base = c.fs_base;
    ctx.gs_base_kernel = c.gs_base_kernel;
    ctx.gs_base_user = c.gs_base_user;
    *ctx.trap_table = traps;
    ctx.event_callback = event;
    ctx.failsafe_callback = failsafe;
    ctx.syscall_callback = syscall;
    *ctx.fpu = if c.flags & VGCF_I387_VALID != 0 { FxArea(c.fpu_ctxt) } else { FxArea::initial() };
    drop(ctx);
    for root in [old.0, old.1] {
        if root.0 != 0 {
            with_mm(|mm| mm.put_page_and_type(&mut DirectPageMem, root));
        }
    }
    d.vm_assist.store(c.vm_assist, Ordering::Relaxed);
    v.is_up.store(true, Ordering::Release);
    Ok(())
}

/// A general and an L4 type reference on `mfn`, which `dom` must own (validated if new).
fn take_l4(mfn: Mfn, dom: DomId) -> Result<(), Errno> {
    with_mm(|mm| mm.get_page_and_type(&mut DirectPageMem, mfn, PageType::L4, dom))
}

fn set_regs(ctx: &mut VcpuContext, u: &CpuUserRegs, cs: u64, ss: u64) {
    let r = &mut ctx.regs;
    (r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx) = (u.r15, u.r14, u.r13, u.r12, u.rbp, u.rbx);
    (r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx) = (u.r11, u.r10, u.r9, u.r8, u.rax, u.rcx);
    (r.rdx, r.rsi, r.rdi) = (u.rdx, u.rsi, u.rdi);
    r.rip = u.rip;
    r.rsp = u.rsp;
    r.rflags = (u.rflags & RFLAGS_GUEST) | RFLAGS_IF;
    r.cs = cs;
    r.ss = ss;
    r.vector = 0;
    r.error_code = 0;
}

/// `v`'s state as a `vcpu_guest_context` (into `c`, which the caller zeroed).
pub fn get(d: &Domain, v: &Vcpu, c: &mut VcpuGuestContext) {
    let ctx = v.ctx.lock();
    let r = &ctx.regs;
    let u = &mut c.user_regs;
    (u.r15, u.r14, u.r13, u.r12, u.rbp, u.rbx) = (r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx);
    (u.r11, u.r10, u.r9, u.r8, u.rax, u.rcx) = (r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx);
    (u.rdx, u.rsi, u.rdi) = (r.rdx, r.rsi, r.rdi);
    u.rip = r.rip;
    u.rsp = r.rsp;
    u.rflags = r.rflags;
    u.cs = r.cs as u16;
    u.ss = r.ss as u16;
    c.flags = VGCF_I387_VALID;
    if ctx.kernel_mode {
        c.flags |= VGCF_IN_KERNEL;
    }
    if v.is_up.load(Ordering::Acquire) {
        c.flags |= VGCF_ONLINE;
    }
    if ctx.failsafe_callback.mask_events {
        c.flags |= VGCF_FAILSAFE_DISABLES_EVENTS;
    }
    if ctx.syscall_callback.mask_events {
        c.flags |= VGCF_SYSCALL_DISABLES_EVENTS;
    }
    c.fpu_ctxt = ctx.fpu.0;
    for (vector, (t, e)) in c.trap_ctxt.iter_mut().zip(ctx.trap_table.iter()).enumerate() {
        *t = TrapInfo { vector: vector as u8, flags: e.flags, cs: e.cs, ..TrapInfo::default() };
        t.address.0 = e.address;
    }
    for (out, f) in c.gdt_frames.iter_mut().zip(ctx.gdt()) {
        *out = f.0;
    }
    c.gdt_ents = u64::from(ctx.gdt_ents);
    c.kernel_ss = ctx.kernel_ss;
    c.kernel_sp = ctx.kernel_sp;
    c.ctrlreg[3] = ctx.guest_table.0 << 12;
    c.ctrlreg[1] = ctx.guest_table_user.0 << 12;
    c.event_callback_eip = ctx.event_callback.address;
    c.failsafe_callback_eip = ctx.failsafe_callback.address;
    c.syscall_callback_eip = ctx.syscall_callback.address;
    c.vm_assist = d.vm_assist.load(Ordering::Relaxed);
    c.fs_base = ctx.fs_base;
    c.gs_base_kernel = ctx.gs_base_kernel;
    c.gs_base_user = ctx.gs_base_user;
}
