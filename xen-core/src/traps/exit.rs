//! The way back to a guest, taken after every trap, interrupt and hypercall: fire the timers
//! that expired, make the scheduling decision the run state asks for (idling while nothing
//! can run, destroying dead domains once none of their vCPUs is on the CPU), and deliver a
//! pending event upcall to whichever vCPU runs next. Also the first entry into a guest, at the
//! end of boot.
//!
//! This is the layer above the scheduler, event channels and the domain lifecycle: it drives
//! all three, and none of them calls back up into it. A wake-up (an event, a timer) only
//! marks a vCPU runnable and asks for a decision; the decision is made here.

use core::sync::atomic::Ordering;

use hypercall_abi::event_channel::VIRQ_TIMER;

use super::deliver::{bounce_exception, deliver};
use crate::arch::entry::{self, GuestRegs};
use crate::arch::{boot, cpu, layout, power, time, uaccess};
use crate::domain::lifecycle;
use crate::domain::{self, DomState, VI_UPCALL_MASK, VI_UPCALL_PENDING, Vcpu, VcpuContext};
use crate::event;
use crate::mm;
use crate::sched::switch::{self, Decision, Switch};
use crate::sched::{self, timer};

/// The work done on every way back into a guest: run expired timers, switch vCPUs if needed,
/// then deliver a pending event upcall to whichever vCPU will run.
pub fn exit_to_guest(regs: &mut GuestRegs) {
    run_expired();
    loop {
        // Whatever stops the current vCPU from running (block, shutdown, pause, destruction)
        // asks for a reschedule, so the fast path checks nothing else.
        if sched::take_resched() {
            schedule(regs);
            // Scheduling takes time: the new slice (or a timer) may already have run out and
            // asked for another decision, which must not wait for an interrupt that will not
            // come (nothing is armed for a deadline already past).
            continue;
        }
        let cur = sched::current();
        // Never leave to an address the CPU would fault on in ring 0 (a `syscall` at the top
        // of the lower half returns to a non-canonical rip, an iret names one): as on Xen, the
        // guest gets the #GP(0) the return would have raised, at that rip; without a #GP
        // handler it is crashed (`bounce_exception`). A handler's own address was checked
        // when it was registered, so this cannot loop.
        if !uaccess::is_guest_range(regs.rip, 1) {
            if let Some(d) = domain::get(cur.domain) {
                let mut ctx = cur.ctx.lock();
                bounce_exception(&d, &cur, &mut ctx, regs, 13, Some(0));
            }
            continue;
        }
        if event::upcall_due(&cur) {
            let mut ctx = cur.ctx.lock();
            deliver_upcall(&cur, &mut ctx, regs);
        }
        return;
    }
}

/// Charges the current vCPU and switches to what runs next; idles while nothing can run.
/// Domains waiting for destruction go once their vCPUs are off the CPU.
fn schedule(regs: &mut GuestRegs) {
    let mut decision = Decision::begin();
    loop {
        match decision.next(regs) {
            Switch::Stayed => {
                run_expired();
                return;
            }
            Switch::To(next) => {
                lifecycle::destroy_pending(Some(&next));
                periodic_switch_in(&next);
                run_expired();
                return;
            }
            Switch::Idle => {
                // No guest's page tables are loaded: finish off dead domains, and wait for an
                // interrupt (a timer or a device) to give something to run.
                lifecycle::destroy_pending(None);
                if domain::find(|d| d.state() == DomState::Running).is_none() {
                    log::error!("no domain left to run");
                    power::exit(power::ExitCode::HypervisorFailure);
                }
                run_expired();
                // A timer that expired just now may have woken a vCPU: then halting would wait
                // for an interrupt that need not come (nothing may be armed any more). A wake-up
                // while idle always asks for a decision, so the request says it.
                if !sched::take_resched() {
                    idle();
                }
                switch::idle_over();
            }
        }
    }
}

/// Frames the idle loop scrubs between looks at interrupts and timers: about 40 us under
/// TCG, the most a wake-up waits for the scrubbing.
const SCRUB_BATCH: usize = 4;

/// The CPU has nothing to run: zero free frames (so guests' allocations find them clean),
/// a few at a time, letting interrupts in and firing expired timers between, until a
/// wake-up asks for a decision; halt once every free frame is clean.
fn idle() {
    loop {
        if mm::machine::scrub_some(SCRUB_BATCH) == 0 {
            cpu::idle_halt();
            run_expired();
            return;
        }
        cpu::let_interrupts_in();
        run_expired();
        if sched::take_resched() {
            return;
        }
    }
}

/// Bounces to the event callback if an upcall is due.
fn deliver_upcall(v: &Vcpu, ctx: &mut VcpuContext, regs: &mut GuestRegs) {
    let pending = v.info_byte(VI_UPCALL_PENDING).load(Ordering::Acquire);
    let masked = v.info_byte(VI_UPCALL_MASK).load(Ordering::Acquire);
    if pending == 0 || masked != 0 || ctx.event_callback.address == 0 {
        return;
    }
    let Some(d) = domain::get(v.domain) else { return };
    let cb = ctx.event_callback.address;
    // The event callback always runs with further upcalls masked, as on Xen.
    deliver(&d, v, ctx, regs, cb, true, None);
}

/// Fires every deadline that has passed (each vCPU's single-shot and periodic timers raise
/// VIRQ_TIMER, poll timeouts wake their vCPU, the slice's end asks for a decision), then
/// re-arms the APIC for the next one. Cheap when nothing is due: this runs on every return
/// to a guest.
fn run_expired() {
    let now = time::now_ns();
    if timer::none_due(now) {
        return;
    }
    let mut next = u64::MAX;
    let running = sched::running();
    // Under the domain table's read lock, allocating nothing: raising an event or waking a
    // vCPU only reads the table again.
    domain::for_each(|d| {
        for v in &d.vcpus {
            let t = v.timer_deadline.load(Ordering::Acquire);
            if t != 0 {
                if t <= now {
                    if v.timer_deadline
                        .compare_exchange(t, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        event::send_virq(d, v.id, VIRQ_TIMER);
                    }
                } else {
                    next = next.min(t);
                }
            }
            // The periodic timer ticks only while its vCPU runs, as on Xen: a vCPU that
            // blocks is woken by its single-shot timer, and gets one catch-up tick when it is
            // switched in after a period went by (`periodic_switch_in`).
            let period = v.periodic_ns.load(Ordering::Acquire);
            if period != 0 && running.as_ref().is_some_and(|r| core::ptr::eq(&**r, &**v)) {
                let mut due = v.periodic_next.load(Ordering::Acquire);
                if due <= now {
                    event::send_virq(d, v.id, VIRQ_TIMER);
                    // Missed periods are skipped, not replayed in a burst.
                    due = now + period;
                    v.periodic_next.store(due, Ordering::Release);
                }
                next = next.min(due);
            }
            let p = v.poll_deadline.load(Ordering::Acquire);
            if p != 0 {
                if p <= now {
                    v.poll_deadline.store(0, Ordering::Release);
                    *v.poll.lock() = None;
                    sched::wake(v);
                } else {
                    next = next.min(p);
                }
            }
        }
    });
    timer::end_slice_and_rearm(now, next);
}

/// A vCPU is switched in: its periodic timer, stopped while it was not running, counts again
/// (a tick at once if a period went by, the scan in `run_expired` sends it).
fn periodic_switch_in(v: &Vcpu) {
    if v.periodic_ns.load(Ordering::Acquire) != 0 {
        timer::deadline_added(v.periodic_next.load(Ordering::Acquire).max(1));
    }
}

/// Enters the first vCPU the policy picks. Called once at the end of boot.
pub fn start() -> ! {
    let regs = switch::first();
    periodic_switch_in(&sched::current());
    run_expired();
    let top = boot::boot_stack_top();
    entry::start_guest(top, layout::BOOT_STACK_SIZE as u64, &regs)
}
