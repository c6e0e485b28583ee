//! Reflecting an exception or an event to a guest: a bounce frame on the guest's kernel stack
//! (`bounce` has the layout) and a jump to the handler it registered, switching from guest
//! user to guest kernel mode first when needed. A guest without a handler, or whose stack
//! cannot take the frame, is crashed alone.

use alloc::sync::Arc;

use hypercall_abi::Errno;
use log::error;
use zerocopy::IntoBytes;

use super::bounce::{self, Interrupted};
use super::fatal::name;
use crate::arch::cpu::{self, GUEST_CS64, GUEST_DS};
use crate::arch::entry::GuestRegs;
use crate::arch::{paging, uaccess};
use crate::domain::lifecycle;
use crate::domain::{Domain, VI_UPCALL_MASK, Vcpu, VcpuContext};

const TF: u64 = 1 << 8;
const IF: u64 = 1 << 9;
const NT: u64 = 1 << 14;
const RF: u64 = 1 << 16;

/// Delivers exception `vector` to the guest's registered handler, or crashes the domain.
pub fn bounce_exception(
    d: &Arc<Domain>,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    regs: &mut GuestRegs,
    vector: u64,
    ec: Option<u64>,
) {
    let te = ctx.trap_table[vector as usize];
    if te.address == 0 {
        crash_with_regs(
            d,
            regs,
            format_args!("exception {vector} ({}) with no handler", name(vector)),
        );
        return;
    }
    deliver(d, v, ctx, regs, te.address, te.flags & 4 != 0, ec);
}

fn crash_with_regs(d: &Arc<Domain>, regs: &GuestRegs, why: core::fmt::Arguments<'_>) {
    error!(
        "d{}: rip {:#x} rsp {:#x} rflags {:#x} error {:#x} cr2 {:#x}",
        d.id.0,
        regs.rip,
        regs.rsp,
        regs.rflags,
        regs.error_code,
        cpu::read_cr2()
    );
    // The top of the guest's stack, as Xen's "guest stack trace": return addresses there name
    // the caller of what faulted (through the guest's own symbols).
    let mut words = [0u64; 8];
    if uaccess::copy_from_guest(words.as_mut_bytes(), regs.rsp).is_ok() {
        error!("d{}: stack {:x?}", d.id.0, words);
    }
    lifecycle::crash(d, why);
}

/// Switches a vCPU between guest kernel and guest user mode: page tables and GS base.
pub fn toggle_guest_mode(ctx: &mut VcpuContext) -> Result<(), Errno> {
    if ctx.kernel_mode && ctx.guest_table_user.0 == 0 {
        return Err(Errno::EINVAL);
    }
    let gs = cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE);
    if ctx.kernel_mode {
        ctx.gs_base_kernel = gs;
    } else {
        ctx.gs_base_user = gs;
    }
    ctx.kernel_mode = !ctx.kernel_mode;
    let (table, gs) = if ctx.kernel_mode {
        (ctx.guest_table, ctx.gs_base_kernel)
    } else {
        (ctx.guest_table_user, ctx.gs_base_user)
    };
    paging::load_cr3(table.0 << 12);
    cpu::write_base_msr(cpu::MSR_KERNEL_GS_BASE, gs);
    Ok(())
}

/// Builds a bounce frame for `handler` on the guest kernel stack and points the guest at it.
/// From user mode this first switches the vCPU to kernel mode and its registered stack.
pub fn deliver(
    d: &Arc<Domain>,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    regs: &mut GuestRegs,
    handler: u64,
    mask: bool,
    ec: Option<u64>,
) {
    let mask_byte = v.info_byte(VI_UPCALL_MASK);
    let int = Interrupted {
        rip: regs.rip,
        cs: regs.cs,
        rflags: regs.rflags,
        rsp: regs.rsp,
        ss: regs.ss,
        rcx: regs.rcx,
        r11: regs.r11,
        kernel_mode: ctx.kernel_mode,
        upcall_mask: mask_byte.load(core::sync::atomic::Ordering::Relaxed),
    };
    let stack = if ctx.kernel_mode {
        regs.rsp
    } else {
        if ctx.kernel_sp == 0 || toggle_guest_mode(ctx).is_err() {
            crash_with_regs(
                d,
                regs,
                format_args!("event or exception in user mode with no kernel stack"),
            );
            return;
        }
        ctx.kernel_sp
    };
    let frame = bounce::exception_frame(&int, stack, ec);
    if uaccess::copy_to_guest(frame.rsp, frame.words().as_bytes()).is_err() {
        crash_with_regs(d, regs, format_args!("cannot write a bounce frame at {:#x}", frame.rsp));
        return;
    }
    regs.rip = handler;
    regs.cs = u64::from(GUEST_CS64);
    regs.ss = u64::from(GUEST_DS);
    regs.rsp = frame.rsp;
    regs.rflags = (regs.rflags & !(TF | NT | RF)) | IF;
    if mask {
        mask_byte.store(1, core::sync::atomic::Ordering::Relaxed);
    }
}
