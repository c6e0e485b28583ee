//! Running vCPUs on this CPU: which one is current, switching between them, the idle loop,
//! and the work done on every return to a guest (`exit_to_guest`): timers, rescheduling and
//! event-upcall delivery. The choice of the next vCPU is the policy's (`xen_core::sched`).
//!
//! The hypervisor keeps no per-vCPU stack: the running vCPU's registers are the frame at the
//! top of this CPU's stack, and a switch copies that frame out to the old vCPU's context and
//! the new vCPU's registers in. So a switch can only happen on the way out to a guest, and a
//! hypercall that must wait (block, poll) returns first and is descheduled after.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::arch::{cpu, entry::GuestRegs, fpu, paging, time};
use super::domain::{self, DomState, Domain, Vcpu, VcpuContext};
use super::{events, timers};

/// This CPU's scheduling state.
struct CpuSched {
    current: Option<Arc<Vcpu>>,
    /// Every vCPU this CPU may run, in the policy's order.
    vcpus: Vec<Arc<Vcpu>>,
    /// Time the current vCPU started running (ns).
    since_ns: u64,
}

static CPU0: Mutex<CpuSched> =
    Mutex::new(CpuSched { current: None, vcpus: Vec::new(), since_ns: 0 });
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// The vCPU running on this CPU.
pub fn current() -> Arc<Vcpu> {
    CPU0.lock().current.clone().expect("a vCPU is current whenever a guest entered")
}

/// Makes `v` schedulable on this CPU.
pub fn add_vcpu(v: Arc<Vcpu>) {
    CPU0.lock().vcpus.push(v);
}

/// Asks for a scheduling decision on the next exit to a guest.
pub fn request_resched() {
    NEED_RESCHED.store(true, Ordering::Release);
}

/// A domain stopped running: its vCPUs leave the run queue at the next decision.
pub fn domain_stopped(_d: &Domain) {
    request_resched();
}

/// Whether `v` can run now.
fn can_run(v: &Vcpu) -> bool {
    v.is_runnable.load(Ordering::Acquire)
        && !v.is_blocked.load(Ordering::Acquire)
        && domain::get(v.domain).is_some_and(|d| d.state() == DomState::Running)
}

/// The work done on every way back into a guest: run expired timers, switch vCPUs if
/// needed, then deliver a pending event upcall to whichever vCPU will run.
pub fn exit_to_guest(regs: &mut GuestRegs) {
    timers::run_expired();
    let cur = current();
    if NEED_RESCHED.swap(false, Ordering::AcqRel) || !can_run(&cur) {
        schedule(regs);
    }
    let cur = current();
    let mut ctx = cur.ctx.lock();
    events::deliver_upcall(&cur, &mut ctx, regs);
}

/// Picks the next vCPU (round robin among runnable ones, the current one last) and switches
/// to it; idles while none can run.
fn schedule(regs: &mut GuestRegs) {
    let prev = current();
    let mut saved = false;
    loop {
        let next = {
            let s = CPU0.lock();
            let n = s.vcpus.len();
            let at = s.vcpus.iter().position(|v| Arc::ptr_eq(v, &prev)).unwrap_or(0);
            (1..=n).map(|k| &s.vcpus[(at + k) % n]).find(|v| can_run(v)).cloned()
        };
        match next {
            Some(next) if Arc::ptr_eq(&next, &prev) && !saved => return,
            Some(next) => {
                if !saved {
                    save_context(&prev, regs);
                }
                load_context(&next, regs);
                return;
            }
            None => {
                if !saved {
                    save_context(&prev, regs);
                    saved = true;
                }
                if domain::all().iter().all(|d| d.state() != DomState::Running) {
                    log::error!("no domain left to run");
                    super::arch::power::exit(super::arch::power::ExitCode::HypervisorFailure);
                }
                // Nothing to run: wait for an interrupt (a timer or a device) to change that.
                paging::load_cr3(super::setup::idle_l4());
                cpu::idle_halt();
                timers::run_expired();
            }
        }
    }
}

/// Copies the running vCPU's state out of the CPU into its context.
fn save_context(v: &Vcpu, regs: &GuestRegs) {
    let mut ctx = v.ctx.lock();
    ctx.regs = *regs;
    fpu::save(&mut ctx.fpu);
    ctx.fs_base = cpu::rdmsr(cpu::MSR_FS_BASE);
    // While the hypervisor runs, the guest's active GS base is parked in KERNEL_GS_BASE.
    let gs = cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE);
    if ctx.kernel_mode {
        ctx.gs_base_kernel = gs;
    } else {
        ctx.gs_base_user = gs;
    }
    let now = time::now_ns();
    let mut s = CPU0.lock();
    v.cpu_time_ns.fetch_add(now.saturating_sub(s.since_ns), Ordering::Relaxed);
    s.since_ns = now;
}

/// Loads `v`'s state into the CPU and makes it current.
fn load_context(v: &Arc<Vcpu>, regs: &mut GuestRegs) {
    let ctx = v.ctx.lock();
    *regs = ctx.regs;
    load_cpu_state(&ctx);
    let mut s = CPU0.lock();
    s.current = Some(v.clone());
    s.since_ns = time::now_ns();
}

/// Loads everything of a context except the registers: FPU, page tables, segment bases.
pub fn load_cpu_state(ctx: &VcpuContext) {
    fpu::restore(&ctx.fpu);
    if ctx.guest_ts {
        fpu::set_ts();
    }
    let table = if ctx.kernel_mode { ctx.guest_table } else { ctx.guest_table_user };
    paging::load_cr3(table.0 << 12);
    cpu::write_base_msr(cpu::MSR_FS_BASE, ctx.fs_base);
    let gs = if ctx.kernel_mode { ctx.gs_base_kernel } else { ctx.gs_base_user };
    cpu::write_base_msr(cpu::MSR_KERNEL_GS_BASE, gs);
}

/// Enters the first runnable vCPU. Called once at the end of boot.
pub fn start() -> ! {
    let first = {
        let s = CPU0.lock();
        s.vcpus.iter().find(|v| can_run(v)).cloned().expect("dom0 is runnable")
    };
    let regs = {
        let ctx = first.ctx.lock();
        load_cpu_state(&ctx);
        alloc::boxed::Box::new(ctx.regs)
    };
    {
        let mut s = CPU0.lock();
        s.current = Some(first);
        s.since_ns = time::now_ns();
    }
    let top = super::arch::boot::boot_stack_top();
    super::arch::entry::start_guest(top, super::arch::layout::BOOT_STACK_SIZE as u64, &regs)
}
