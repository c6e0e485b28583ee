//! What happens when a guest traps into the hypervisor, and when the hypervisor itself faults.
//!
//! A guest exception is reflected to the handler in the guest's virtual trap table through a
//! bounce frame on its kernel stack (`crate::traps::bounce` has the layout); a guest without a
//! handler, or whose stack cannot take the frame, is crashed alone. `syscall` from guest
//! kernel mode is a hypercall; from guest user mode it is bounced to the guest's syscall
//! callback. A fault in hypervisor context is either a guest-memory access with a fixup
//! (`uaccess`), or fatal: registers, faulting address and a stack trace are printed and the
//! machine stops with the failure status.

use alloc::sync::Arc;

use crate::traps::bounce::{self, Interrupted};
use hypercall_abi::Errno;
use log::error;
use zerocopy::IntoBytes;

use crate::arch::cpu::{self, GUEST_CS64, GUEST_DS};
use crate::arch::entry::{GuestRegs, SYSCALL_VECTOR};
use crate::arch::{irq, paging, power, uaccess};
use crate::console::logging;
use crate::domain::{self, Domain, VI_CR2, VI_UPCALL_MASK, Vcpu, VcpuContext};
use crate::hypercall::table;
use crate::sched;
use crate::traps::emulate;

const TF: u64 = 1 << 8;
const IF: u64 = 1 << 9;
const NT: u64 = 1 << 14;
const RF: u64 = 1 << 16;

/// Exceptions that push an error code.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Entry from an IDT stub.
pub fn trap(regs: &mut GuestRegs) {
    if !regs.is_from_guest() {
        hypervisor_trap(regs);
        return;
    }
    let vector = regs.vector;
    if vector >= 32 {
        irq::handle(vector);
    } else {
        let (cur, d) = sched::current_pair();
        guest_exception(&cur, &d, regs, vector);
    }
    sched::exit_to_guest(regs);
}

/// Entry from `syscall`: a hypercall in guest kernel mode, the guest's own system call in
/// guest user mode.
pub fn syscall(regs: &mut GuestRegs) {
    debug_assert_eq!(regs.vector, SYSCALL_VECTOR);
    let (cur, d) = sched::current_pair();
    {
        let mut ctx = cur.ctx.lock();
        if ctx.kernel_mode {
            table::dispatch(&cur, &d, &mut ctx, regs);
        } else {
            let cb = ctx.syscall_callback;
            if cb.address == 0 {
                drop(ctx);
                domain::crash(&d, format_args!("syscall from user mode with no syscall callback"));
            } else {
                deliver(&d, &cur, &mut ctx, regs, cb.address, cb.mask_events, None);
            }
        }
    }
    sched::exit_to_guest(regs);
}

fn guest_exception(cur: &Arc<Vcpu>, d: &Arc<Domain>, regs: &mut GuestRegs, vector: u64) {
    let mut ctx = cur.ctx.lock();
    match vector {
        14 => {
            cur.info_word(VI_CR2).store(cpu::read_cr2(), core::sync::atomic::Ordering::Relaxed);
        }
        13 => {
            // `int n` from ring 3 at a DPL-0 gate arrives as #GP(n << 3 | 2).
            if regs.error_code & 7 == 2 {
                let n = (regs.error_code >> 3) as usize;
                let te = ctx.trap_table.get(n).copied().unwrap_or_default();
                if te.address != 0 && te.flags & 3 == 3 {
                    regs.rip = regs.rip.wrapping_add(2);
                    deliver(d, cur, &mut ctx, regs, te.address, te.flags & 4 != 0, None);
                    return;
                }
            }
            if emulate::privileged_op(d, &mut ctx, regs) {
                return;
            }
        }
        6 if emulate::forced_cpuid(&mut ctx, regs) => return,
        7 if !ctx.guest_ts => {
            // #NM without the guest having set TS cannot happen (CR0.TS is only set for it).
        }
        2 => {
            log::warn!("NMI while d{} ran", d.id.0);
            return;
        }
        8 | 18 => {
            drop(ctx);
            domain::crash(d, format_args!("machine check or double fault (vector {vector})"));
            return;
        }
        _ => {}
    }
    let ec = has_error_code(vector).then_some(regs.error_code);
    bounce_exception(d, cur, &mut ctx, regs, vector, ec);
}

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

fn name(vector: u64) -> &'static str {
    const NAMES: [&str; 21] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "-", "#TS", "#NP", "#SS",
        "#GP", "#PF", "-", "#MF", "#AC", "#MC", "#XM", "#VE",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("?")
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
    domain::crash(d, why);
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
    if uaccess::copy_to_guest(frame.rsp, frame.words.as_bytes()).is_err() {
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

/// A trap taken while the hypervisor itself ran.
fn hypervisor_trap(regs: &mut GuestRegs) {
    let vector = regs.vector;
    if vector >= 32 {
        irq::handle(vector);
        return;
    }
    if matches!(vector, 13 | 14)
        && let Some(fixup) = uaccess::fixup_for(regs.rip)
    {
        regs.rip = fixup;
        return;
    }
    if vector == 2 {
        log::warn!("NMI in hypervisor context");
        return;
    }
    fatal(regs);
}

/// Prints everything useful about a fault in hypervisor context and stops the machine.
fn fatal(regs: &GuestRegs) -> ! {
    logging::enter_panic_mode();
    error!(
        "FATAL: hypervisor fault: vector {} ({}) error code {:#x}",
        regs.vector,
        name(regs.vector),
        regs.error_code
    );
    error!(
        "rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
        regs.rip, regs.cs, regs.rflags, regs.rsp, regs.ss
    );
    error!("cr2 {:#018x} cr3 {:#018x}", cpu::read_cr2(), paging::current_cr3());
    error!(
        "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
        regs.rax, regs.rbx, regs.rcx, regs.rdx
    );
    error!(
        "rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}",
        regs.rsi, regs.rdi, regs.rbp, regs.r8
    );
    error!(
        "r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}",
        regs.r9, regs.r10, regs.r11, regs.r12
    );
    error!("r13 {:#018x} r14 {:#018x} r15 {:#018x}", regs.r13, regs.r14, regs.r15);
    stack_trace(regs.rip, regs.rbp);
    power::exit(power::ExitCode::HypervisorFailure)
}

/// Walks the frame-pointer chain (the image is built with frame pointers) and prints return
/// addresses; `addr2line -e target/images/xen-core.elf <addr>` names them.
pub fn stack_trace(rip: u64, mut rbp: u64) {
    error!("stack trace (addr2line -e target/images/xen-core.elf):");
    error!("  {rip:#018x}");
    let (lo, hi) = crate::arch::boot::hypervisor_stack_bounds();
    for _ in 0..32 {
        if rbp < lo || rbp + 16 > hi || !rbp.is_multiple_of(8) {
            break;
        }
        let (next, ret) = crate::arch::boot::read_stack_pair(rbp);
        if ret == 0 {
            break;
        }
        error!("  {ret:#018x}");
        rbp = next;
    }
}
