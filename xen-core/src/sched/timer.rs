//! Deadlines and the one hardware timer behind them. Every deadline the hypervisor keeps (each
//! vCPU's single-shot and periodic timers, poll timeouts, the end of the running vCPU's time
//! slice) lives with its owner; the local APIC timer is armed, one-shot, for the earliest.
//! When it fires, `run_expired` raises VIRQ_TIMER, wakes pollers and asks for a reschedule.

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::event_channel::VIRQ_TIMER;

use crate::arch::{apic, time};
use crate::domain;
use crate::event;
use crate::sched;

/// End of the running vCPU's time slice (ns), 0 when idle.
static SLICE_END: AtomicU64 = AtomicU64::new(0);
/// The deadline the APIC is armed for (ns), 0 = none.
static ARMED: AtomicU64 = AtomicU64::new(0);
/// No deadline is earlier than this (ns): `run_expired` skips its scan until then. Lowered by
/// every new deadline; a deadline cancelled meanwhile only costs one needless scan.
static NEXT: AtomicU64 = AtomicU64::new(0);
/// Shortest delay the APIC is armed for: below this, the interrupt would race its own setup.
const MIN_DELAY_NS: u64 = 2_000;

/// The timer interrupt: the work itself is done on the way out (`run_expired`).
pub fn on_interrupt() {
    ARMED.store(0, Ordering::Relaxed);
}

/// Sets when the current time slice ends.
pub fn set_slice_end(deadline_ns: u64) {
    SLICE_END.store(deadline_ns, Ordering::Relaxed);
    if deadline_ns != 0 {
        deadline_added(deadline_ns);
    }
}

/// Fires every deadline that has passed, then re-arms the APIC for the next one. Cheap when
/// nothing is due: this runs on every return to a guest.
pub fn run_expired() {
    let now = time::now_ns();
    if now < NEXT.load(Ordering::Relaxed) && ARMED.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut next = u64::MAX;
    for d in domain::all() {
        for v in &d.vcpus {
            let t = v.timer_deadline.load(Ordering::Acquire);
            if t != 0 {
                if t <= now {
                    if v.timer_deadline
                        .compare_exchange(t, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        event::send_virq(&d, v.id, VIRQ_TIMER);
                    }
                } else {
                    next = next.min(t);
                }
            }
            let period = v.periodic_ns.load(Ordering::Acquire);
            let mut due = v.periodic_next.load(Ordering::Acquire);
            if let Some(missed) = (now.saturating_sub(due)).checked_div(period) {
                if due <= now {
                    event::send_virq(&d, v.id, VIRQ_TIMER);
                    // Missed periods are skipped, not replayed in a burst.
                    due += (missed + 1) * period;
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
    }
    let slice = SLICE_END.load(Ordering::Relaxed);
    if slice != 0 {
        if slice <= now {
            SLICE_END.store(0, Ordering::Relaxed);
            sched::request_resched();
        } else {
            next = next.min(slice);
        }
    }
    NEXT.store(next, Ordering::Relaxed);
    arm(now, next);
}

/// Re-arms after a new deadline was set (a guest timer, a poll timeout).
pub fn deadline_added(deadline_ns: u64) {
    NEXT.fetch_min(deadline_ns, Ordering::Relaxed);
    let armed = ARMED.load(Ordering::Relaxed);
    if armed == 0 || deadline_ns < armed {
        arm(time::now_ns(), deadline_ns);
    }
}

/// Arms the APIC for `deadline` unless it already is (register writes are costly, under an
/// emulator most of all).
fn arm(now: u64, deadline: u64) {
    if deadline == u64::MAX {
        if ARMED.swap(0, Ordering::Relaxed) != 0 {
            apic::set_oneshot(0);
        }
        return;
    }
    if ARMED.swap(deadline, Ordering::Relaxed) == deadline {
        return;
    }
    apic::set_oneshot(deadline.saturating_sub(now).max(MIN_DELAY_NS));
}
