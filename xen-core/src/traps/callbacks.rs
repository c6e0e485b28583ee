//! How a guest tells the hypervisor where its handlers are and how to return from them:
//! `set_trap_table`, `set_callbacks`, `callback_op`, `stack_switch`, `set_segment_base`,
//! `fpu_taskswitch`, `vm_assist`, `set_debugreg`/`get_debugreg` and `iret`.

use core::sync::atomic::Ordering;

use hypercall_abi::Errno;
use hypercall_abi::arch::{
    IretContext, SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL, TrapInfo,
};
use hypercall_abi::callback::{
    CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT,
    CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32,
    CALLBACKTYPE_SYSENTER, CallbackRegister, CallbackUnregister,
};
use hypercall_abi::vm_assist::{VMASST_CMD_DISABLE, VMASST_CMD_ENABLE};

use super::emulate::msr::BaseWrite;
use super::{bounce, deliver, emulate};
use crate::arch::cpu::{self, GUEST_CS64, GUEST_DS};
use crate::arch::{fpu, uaccess};
use crate::domain::{Callback, TrapEntry, VI_UPCALL_MASK, VcpuContext, lifecycle};
use crate::hypercall::{Hc, HcResult, copy_in};

/// Guest addresses must be canonical and outside the hypervisor's slots.
fn is_guest_addr(va: u64) -> bool {
    uaccess::is_guest_range(va, 1)
}

/// `set_trap_table(table)`: entries until one with address 0; a null table clears all.
pub fn set_trap_table(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let table = a[0];
    if table == 0 {
        *hc.ctx.trap_table = [TrapEntry::default(); 256];
        return Ok(Some(0));
    }
    // At most 256 entries plus the terminator: the guest cannot make us loop longer.
    for i in 0..=256u64 {
        let ti: TrapInfo = copy_in(table + i * 16)?;
        if ti.address.0 == 0 {
            return Ok(Some(0));
        }
        if !is_guest_addr(ti.address.0) {
            return Err(Errno::EINVAL);
        }
        hc.ctx.trap_table[usize::from(ti.vector)] =
            TrapEntry { flags: ti.flags, cs: ti.cs, address: ti.address.0 };
    }
    Err(Errno::E2BIG)
}

fn set_callback(hc: &mut Hc<'_>, kind: u16, cb: Callback) -> Result<(), Errno> {
    if cb.address != 0 && !is_guest_addr(cb.address) {
        return Err(Errno::EINVAL);
    }
    match kind {
        CALLBACKTYPE_EVENT => hc.ctx.event_callback = cb,
        CALLBACKTYPE_FAILSAFE => hc.ctx.failsafe_callback = cb,
        CALLBACKTYPE_SYSCALL => hc.ctx.syscall_callback = cb,
        // Accepted and kept, as Xen does (Linux registers both): the entry points of 32-bit
        // user code's system calls. xen-core runs no 32-bit user code yet, so they are never
        // called (docs/ARCHITECTURE.md, "Where we differ from Xen").
        CALLBACKTYPE_SYSCALL32 => hc.ctx.syscall32_callback = cb,
        CALLBACKTYPE_SYSENTER => hc.ctx.sysenter_callback = cb,
        CALLBACKTYPE_NMI => {}
        _ => return Err(Errno::EINVAL),
    }
    Ok(())
}

/// `set_callbacks(event, failsafe, syscall)`: the event callback masks events on entry, as
/// Xen's legacy interface does.
pub fn set_callbacks(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    set_callback(hc, CALLBACKTYPE_EVENT, Callback { address: a[0], mask_events: true })?;
    set_callback(hc, CALLBACKTYPE_FAILSAFE, Callback { address: a[1], mask_events: true })?;
    set_callback(hc, CALLBACKTYPE_SYSCALL, Callback { address: a[2], mask_events: true })?;
    Ok(Some(0))
}

/// `callback_op(cmd, arg)`: register or unregister one callback.
pub fn callback_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    match a[0] as u32 {
        CALLBACKOP_REGISTER => {
            let r: CallbackRegister = copy_in(a[1])?;
            let cb = Callback {
                address: r.address.0,
                mask_events: r.flags & CALLBACKF_MASK_EVENTS != 0,
            };
            set_callback(hc, r.kind, cb)?;
        }
        CALLBACKOP_UNREGISTER => {
            let r: CallbackUnregister = copy_in(a[1])?;
            set_callback(hc, r.kind, Callback::default())?;
        }
        _ => return Err(Errno::ENOSYS),
    }
    Ok(Some(0))
}

/// `stack_switch(ss, rsp)`: the kernel stack used when an event or exception interrupts user
/// mode.
pub fn stack_switch(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    if !is_guest_addr(a[1]) {
        return Err(Errno::EINVAL);
    }
    hc.ctx.kernel_ss = a[0];
    hc.ctx.kernel_sp = a[1];
    Ok(Some(0))
}

/// `set_segment_base(which, base)`.
pub fn set_segment_base(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (which, base) = (a[0] as u32, a[1]);
    if x86_64::VirtAddr::try_new(base).is_err() {
        return Err(Errno::EINVAL);
    }
    let b = match which {
        SEGBASE_FS => BaseWrite::Fs(base),
        SEGBASE_GS_KERNEL => BaseWrite::GsKernel(base),
        SEGBASE_GS_USER => BaseWrite::GsUser(base),
        // Loading a user GS selector: only the null/flat ones exist here, both with base 0.
        SEGBASE_GS_USER_SEL => BaseWrite::GsUser(0),
        _ => return Err(Errno::EINVAL),
    };
    apply_segment_base(hc.ctx, b);
    Ok(Some(0))
}

/// Sets a segment base of a vCPU in guest kernel mode (`set_segment_base`, and `wrmsr` of
/// FS_BASE, GS_BASE, SHADOW_GS_BASE). The base must be canonical.
pub fn apply_segment_base(ctx: &mut VcpuContext, b: BaseWrite) {
    match b {
        BaseWrite::Fs(base) => {
            ctx.fs_base = base;
            cpu::write_base_msr(cpu::MSR_FS_BASE, base);
        }
        // The active guest GS base is parked in KERNEL_GS_BASE while the hypervisor runs; in
        // kernel mode that is the kernel's.
        BaseWrite::GsKernel(base) => {
            ctx.gs_base_kernel = base;
            cpu::write_base_msr(cpu::MSR_KERNEL_GS_BASE, base);
        }
        BaseWrite::GsUser(base) => ctx.gs_base_user = base,
    }
}

/// `fpu_taskswitch(set)`: the guest's virtual CR0.TS.
pub fn fpu_taskswitch(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    hc.ctx.guest_ts = a[0] != 0;
    if hc.ctx.guest_ts {
        fpu::set_ts();
    } else {
        fpu::clear_ts();
    }
    Ok(Some(0))
}

/// The assists a 64-bit PV guest may turn on, as Xen 4.17 accepts them: 4gb_segments(_notify),
/// writable_pagetables (emulated: `emulate::fault`), pae_extended_cr3, architectural_iopl,
/// runstate_update_flag and m2p_strict. Only writable_pagetables and architectural_iopl change
/// what this hypervisor does.
pub const VM_ASSIST_VALID: u64 = 0x3F | (1 << 32);

/// `vm_assist(cmd, type)`: records which assists the guest turned on.
pub fn vm_assist(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let bit = a[1];
    if bit >= 64 || VM_ASSIST_VALID & (1 << bit) == 0 {
        return Err(Errno::EINVAL);
    }
    match a[0] as u32 {
        VMASST_CMD_ENABLE => hc.dom.vm_assist.fetch_or(1 << bit, Ordering::Relaxed),
        VMASST_CMD_DISABLE => hc.dom.vm_assist.fetch_and(!(1 << bit), Ordering::Relaxed),
        _ => return Err(Errno::ENOSYS),
    };
    Ok(Some(0))
}

/// `set_debugreg(reg, value)`: Xen's validation (`emulate::privop::set_debugreg`), then the
/// value is live on this CPU.
pub fn set_debugreg(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let reg = u32::try_from(a[0]).map_err(|_| Errno::ENODEV)?;
    emulate::set_debugreg(hc.ctx, reg, a[1])?;
    Ok(Some(0))
}

/// `get_debugreg(reg)`: the register's value in rax (`ENODEV` for a register that has none).
pub fn get_debugreg(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let reg = u32::try_from(a[0]).map_err(|_| Errno::ENODEV)?;
    Ok(Some(emulate::privop::get_debugreg(&hc.ctx.privregs, reg)?))
}

/// `iret`: the guest jumped to stub 23 with `rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`
/// on its stack (the stub pushed rax/r11/rcx). Returns to kernel or user mode as `cs` says.
pub fn iret(hc: &mut Hc<'_>, _a: [u64; 5]) -> HcResult {
    let frame: IretContext = match copy_in(hc.regs.rsp) {
        Ok(f) => f,
        Err(_) => {
            lifecycle::crash(
                hc.dom,
                format_args!("iret with an unreadable frame at {:#x}", hc.regs.rsp),
            );
            return Ok(None);
        }
    };
    let r = bounce::iret(&frame);
    if !is_guest_addr(r.rip) || !is_guest_addr(r.rsp.wrapping_sub(1)) {
        lifecycle::crash(hc.dom, format_args!("iret to a non-guest address {:#x}", r.rip));
        return Ok(None);
    }
    if r.to_user == hc.ctx.kernel_mode && deliver::toggle_guest_mode(hc.ctx).is_err() {
        lifecycle::crash(hc.dom, format_args!("iret to user mode with no user page table"));
        return Ok(None);
    }
    let regs = &mut *hc.regs;
    regs.rax = frame.rax;
    if r.restore_rcx_r11 {
        regs.rcx = frame.rcx;
        regs.r11 = frame.r11;
    } else {
        // VGCF_in_syscall: the return of a system call, which user space sees as `sysret`
        // leaves it (rcx = rip, r11 = rflags), as on Xen. This also makes the exit a sysretq,
        // and user space never sees the kernel's own rcx (its address after the hypercall).
        regs.rcx = r.rip;
        regs.r11 = r.rflags;
    }
    regs.rip = r.rip;
    regs.rsp = r.rsp;
    regs.rflags = r.rflags;
    regs.cs = u64::from(GUEST_CS64);
    regs.ss = u64::from(GUEST_DS);
    hc.vcpu.info_byte(VI_UPCALL_MASK).store(r.upcall_mask, Ordering::Release);
    Ok(None)
}
