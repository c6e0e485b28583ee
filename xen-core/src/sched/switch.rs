//! The context switch: charging the vCPU that ran, asking the policy what runs next, and
//! moving registers, FPU state, page tables and segment bases between the CPU and vCPU
//! contexts. It makes one decision at a time; the loop around it (idling, destroying dead
//! domains once they are off the CPU, firing timers) is the way back to a guest,
//! `traps::exit`.
//!
//! The hypervisor keeps no per-vCPU stack: the running vCPU's registers are the frame at the
//! top of this CPU's stack, and a switch copies that frame out to the old vCPU's context and
//! the new vCPU's registers in. So a switch happens only on the way out to a guest, and a
//! hypercall that must wait (block, poll) returns first and is descheduled after.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::run::{CPU0, can_run, current};
use super::{areas, clock, runstate, timer};
use crate::arch::entry::GuestRegs;
use crate::arch::{cpu, fpu, paging, privregs, time};
use crate::domain::{self, Vcpu, VcpuContext};
use crate::mm::machine;

/// What one scheduling decision did.
pub enum Switch {
    /// The vCPU that ran goes on running.
    Stayed,
    /// Another vCPU is now current, its registers in the frame.
    To(Arc<Vcpu>),
    /// Nothing can run: the vCPU that ran is saved and the CPU is on the hypervisor's own page
    /// tables, to wait for an interrupt (a timer or a device) before the next decision.
    Idle,
}

/// A scheduling decision in progress: from charging the vCPU that ran until one can run.
pub struct Decision {
    prev: Arc<Vcpu>,
    /// The vCPU that ran is already copied out of the frame (the CPU idled meanwhile).
    saved: bool,
}

impl Decision {
    /// Charges the current vCPU for the time it ran and takes it off the run queue if it can
    /// no longer run.
    pub fn begin() -> Decision {
        let prev = current();
        let now = time::now_ns();
        // Before taking the scheduler lock: `can_run` reads the domain table, which comes first
        // in the lock order.
        let prev_can_run = can_run(&prev);
        {
            let mut s = CPU0.lock();
            let ran = now.saturating_sub(s.since_ns);
            s.policy.account(prev.sched_id, ran);

            prev.cpu_time_ns.fetch_add(ran, Ordering::Relaxed);
            s.since_ns = now;
            if !prev_can_run {
                s.policy.sleep(prev.sched_id);
            }
        }
        Decision { prev, saved: false }
    }

    /// Picks what runs next and switches the CPU to it; when nothing can run, saves the vCPU
    /// that ran and leaves every guest's page tables.
    pub fn next(&mut self, regs: &mut GuestRegs) -> Switch {
        loop {
            let now = time::now_ns();
            let next = {
                let mut s = CPU0.lock();
                let pick = s.policy.pick(now);
                pick.and_then(|id| s.vcpus.get(id).cloned().flatten()).map(|v| {
                    let slice = s.policy.run_for(v.sched_id, now);
                    (v, slice)
                })
            };
            match next {
                Some((next, slice)) if can_run(&next) => {
                    timer::set_slice_end(now + slice);
                    if Arc::ptr_eq(&next, &self.prev) && !self.saved {
                        clock::publish(&next);
                        areas::update_time(&next, &next.ctx.lock());
                        return Switch::Stayed;
                    }
                    if !self.saved {
                        save_context(&self.prev, regs);
                    }
                    load_context(&next, regs);
                    return Switch::To(next);
                }
                Some((stale, _)) => {
                    // The policy thought it runnable but it is not (raced with a block): park it.
                    CPU0.lock().policy.sleep(stale.sched_id);
                }
                None => {
                    if !self.saved {
                        save_context(&self.prev, regs);
                        self.saved = true;
                    }
                    // Nothing to run: leave every guest's page tables and wait for an interrupt
                    // (a timer or a device) to change that. A capped vCPU waiting for its next
                    // credit makes the refill such a timer.
                    let refill = {
                        let mut s = CPU0.lock();
                        s.is_idle = true;
                        if s.policy.has_parked() { s.policy.next_refill() } else { 0 }
                    };
                    timer::set_slice_end(refill);

                    paging::load_cr3(paging::idle_l4());
                    return Switch::Idle;
                }
            }
        }
    }
}

/// The CPU is back from idling: the next vCPU's run time counts from now.
pub fn idle_over() {
    let mut s = CPU0.lock();
    s.is_idle = false;
    s.since_ns = time::now_ns();
}

/// Copies the running vCPU's state out of the CPU into its context.
fn save_context(v: &Vcpu, regs: &GuestRegs) {
    let state = runstate::after_running(
        v.is_up.load(Ordering::Acquire),
        v.is_blocked.load(Ordering::Acquire),
    );
    v.runstate.lock().enter(state, time::now_ns());
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
}

/// Loads `v`'s state into the CPU and makes it current.
fn load_context(v: &Arc<Vcpu>, regs: &mut GuestRegs) {
    let d = domain::get(v.domain);
    {
        let ctx = v.ctx.lock();
        *regs = ctx.regs;
        load_cpu_state(&ctx);
        switched_in(v, d.as_deref(), &ctx);
    }
    let mut s = CPU0.lock();
    s.current = Some(v.clone());
    s.current_dom = d;
    s.since_ns = time::now_ns();
}

/// Puts `ctx`'s descriptors (its GDT, checked when it was set) in this CPU's GDT.
pub fn load_gdt(ctx: &VcpuContext) {
    let frames = ctx.gdt();
    cpu::load_guest_gdt(ctx.gdt_ents as usize, |i| {
        let mut b = [0u8; 8];
        machine::read_frame(frames[i / 512], (i % 512) * 8, &mut b);
        u64::from_le_bytes(b)
    });
}

/// `v` runs from now (its page tables are loaded): its runstate, its time, and the guest
/// areas that mirror them.
fn switched_in(v: &Vcpu, d: Option<&domain::Domain>, ctx: &VcpuContext) {
    v.runstate.lock().enter(runstate::RUNNING, time::now_ns());
    clock::publish(v);
    areas::update_time(v, ctx);
    if let Some(d) = d {
        areas::update_runstate(d, v, ctx);
    }
}

/// Loads everything of a context except the registers: FPU, page tables, segment bases,
/// debug registers.
pub fn load_cpu_state(ctx: &VcpuContext) {
    load_gdt(ctx);
    fpu::restore(&ctx.fpu);
    if ctx.guest_ts {
        fpu::set_ts();
    }
    let table = if ctx.kernel_mode { ctx.guest_table } else { ctx.guest_table_user };
    paging::load_cr3(table.0 << 12);
    cpu::write_base_msr(cpu::MSR_FS_BASE, ctx.fs_base);
    let gs = if ctx.kernel_mode { ctx.gs_base_kernel } else { ctx.gs_base_user };
    cpu::write_base_msr(cpu::MSR_KERNEL_GS_BASE, gs);
    let p = &ctx.privregs;
    privregs::load_debug(&p.dr, p.dr7, p.dr7_active());
}

/// Makes the first vCPU the policy picks current and returns the registers to enter it with.
/// Called once at the end of boot.
pub fn first() -> Box<GuestRegs> {
    let now = time::now_ns();
    // The first vCPU the policy offers that may really run (boot domUs wait paused). The
    // scheduler lock is dropped around `can_run`, which reads the domain table (lock order).
    let (first, slice) = loop {
        let (id, v) = {
            let mut s = CPU0.lock();
            let id = s.policy.pick(now).expect("dom0 is runnable");
            (id, s.vcpus[id].clone().expect("registered vCPU"))
        };
        if can_run(&v) {
            break (v, CPU0.lock().policy.run_for(id, now));
        }
        CPU0.lock().policy.sleep(id);
    };
    let d = domain::get(first.domain);
    let regs = {
        let ctx = first.ctx.lock();
        load_cpu_state(&ctx);
        switched_in(&first, d.as_deref(), &ctx);
        Box::new(ctx.regs)
    };
    {
        let mut s = CPU0.lock();
        s.current = Some(first);
        s.current_dom = d;
        s.since_ns = time::now_ns();
    }
    timer::set_slice_end(now + slice);
    regs
}
