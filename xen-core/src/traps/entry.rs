//! Where the hardware hands a guest over to the hypervisor: every IDT stub (exceptions and
//! interrupts, from a guest or from the hypervisor itself) and `syscall`. `syscall` from guest
//! kernel mode is a hypercall; from guest user mode it is bounced to the guest's syscall
//! callback. A guest's exception is emulated (`emulate`) or reflected to its handler
//! (`deliver`); a fault in hypervisor context is either a guest-memory access with a fixup
//! (`uaccess`) or fatal (`fatal`). Every way out goes through `exit`.

use alloc::sync::Arc;

use super::deliver::{bounce_exception, deliver};
use super::emulate::{self, Emulated};
use super::exit::exit_to_guest;
use super::fatal;
use crate::arch::entry::{GuestRegs, SYSCALL_VECTOR};
use crate::arch::{cpu, irq, privregs, uaccess};
use crate::domain::lifecycle;
use crate::domain::{Domain, VI_CR2, Vcpu};
use crate::hypercall::table;
use crate::sched::{self, timer};

/// Exceptions that push an error code.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Entry from an IDT stub.
pub fn trap(regs: &mut GuestRegs) {
    crate::arch::uaccess::ac_on_entry("trap");
    if !regs.is_from_guest() {
        hypervisor_trap(regs);
        return;
    }
    let vector = regs.vector;
    if vector == INT80_VECTOR {
        let (cur, d) = sched::current_pair();
        int80(&cur, &d, regs);
    } else if vector >= 32 {
        interrupt(vector);
    } else {
        let (cur, d) = sched::current_pair();
        guest_exception(&cur, &d, regs, vector);
    }
    exit_to_guest(regs);
}

/// The one software interrupt with a DPL-3 gate, as on Xen (its direct trap for 32-bit
/// system calls).
const INT80_VECTOR: u64 = 0x80;

/// `int $0x80`: to the guest's handler for it if its DPL lets the guest's current mode in,
/// else the #GP Xen builds for it, error code `0x80 << 3 | 2` (the vector as an IDT index).
fn int80(cur: &Arc<Vcpu>, d: &Arc<Domain>, regs: &mut GuestRegs) {
    let mut ctx = cur.ctx.lock();
    let te = ctx.trap_table[INT80_VECTOR as usize];
    let need = if ctx.kernel_mode { 1 } else { 3 };
    if te.address != 0 && te.flags & 3 >= need {
        // The interrupt is done: the frame's rip is already after the instruction.
        deliver(d, cur, &mut ctx, regs, te.address, te.flags & 4 != 0, None);
    } else {
        // A fault at the instruction (2 bytes), as Xen rewinds it.
        regs.rip = regs.rip.wrapping_sub(2);
        bounce_exception(d, cur, &mut ctx, regs, 13, Some((INT80_VECTOR << 3) | 2));
    }
}

/// Entry from `syscall`: a hypercall in guest kernel mode, the guest's own system call in
/// guest user mode.
pub fn syscall(regs: &mut GuestRegs) {
    crate::arch::uaccess::ac_on_entry("syscall");
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
                lifecycle::crash(
                    &d,
                    format_args!("syscall from user mode with no syscall callback"),
                );
            } else {
                deliver(&d, &cur, &mut ctx, regs, cb.address, cb.mask_events, None);
                // The user's rcx and r11 are in the bounce frame; in the registers the kernel
                // gets the callback's rip and rflags, as Xen leaves them (it returns to the
                // guest kernel with sysret): the exit can be a sysretq too.
                regs.rcx = regs.rip;
                regs.r11 = regs.rflags;
            }
        }
    }
    exit_to_guest(regs);
}

fn guest_exception(cur: &Arc<Vcpu>, d: &Arc<Domain>, regs: &mut GuestRegs, vector: u64) {
    let mut ctx = cur.ctx.lock();
    match vector {
        14 => {
            let cr2 = cpu::read_cr2();
            if emulate::fault::page_table_write(d, &ctx, regs, cr2) {
                return;
            }
            ctx.privregs.cr2 = cr2;
            cur.info_word(VI_CR2).store(cr2, core::sync::atomic::Ordering::Relaxed);
        }
        1 => {
            let dr6 = privregs::take_dr6();
            emulate::privop::dr6_on_debug_trap(&mut ctx.privregs, dr6);
        }
        13 => {
            // `int n` from ring 3 at a DPL-0 gate arrives as #GP(n << 3 | 2).
            if regs.error_code & 7 == 2 {
                let n = (regs.error_code >> 3) as usize;
                let te = ctx.trap_table.get(n).copied().unwrap_or_default();
                // As Xen's permit_softint: a gate of DPL 1 or more from guest kernel mode (the
                // kernel is ring 1 to the ABI), DPL 3 from user mode.
                let need = if ctx.kernel_mode { 1 } else { 3 };
                if te.address != 0 && te.flags & 3 >= need {
                    regs.rip = regs.rip.wrapping_add(2);
                    deliver(d, cur, &mut ctx, regs, te.address, te.flags & 4 != 0, None);
                    return;
                }
            }
            // Privileged instructions fault with error code 0.
            if regs.error_code == 0 {
                match emulate::privileged_op(d, cur, &mut ctx, regs) {
                    Emulated::Done => return,
                    Emulated::Raise(v) => {
                        let ec = has_error_code(v).then_some(0);
                        bounce_exception(d, cur, &mut ctx, regs, v, ec);
                        return;
                    }
                    Emulated::No => {}
                }
            }
        }
        6 if emulate::forced_cpuid(regs) => return,
        7 if !ctx.guest_ts => {
            // #NM without the guest having set TS cannot happen (CR0.TS is only set for it).
        }
        2 => {
            log::warn!("NMI while d{} ran", d.id.0);
            return;
        }
        8 | 18 => {
            drop(ctx);
            lifecycle::crash(d, format_args!("machine check or double fault (vector {vector})"));
            return;
        }
        _ => {}
    }
    let ec = has_error_code(vector).then_some(regs.error_code);
    bounce_exception(d, cur, &mut ctx, regs, vector, ec);
}

/// A hardware interrupt. The timer's deadlines are run on the way back to the guest; a
/// device's interrupt becomes an event on the port its owner bound (`event::irq`).
fn interrupt(vector: u64) {
    match irq::handle(vector) {
        irq::Interrupt::Timer => timer::on_interrupt(),
        irq::Interrupt::Device(gsi) => crate::event::irq::fire(gsi),
        irq::Interrupt::None => {}
    }
}

/// A trap taken while the hypervisor itself ran.
fn hypervisor_trap(regs: &mut GuestRegs) {
    let vector = regs.vector;
    if vector >= 32 {
        interrupt(vector);
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
    // A guest's data breakpoint hit by the hypervisor's own access to guest memory: ignored,
    // as on Xen (the access is the guest's request, not its instruction).
    if vector == 1 {
        privregs::take_dr6();
        return;
    }
    fatal::fatal(regs);
}
