//! Deadlines and the one hardware timer behind them. Every deadline the hypervisor keeps (each
//! vCPU's single-shot and periodic timers, poll timeouts, the end of the running vCPU's time
//! slice) lives with its owner; the local APIC timer is armed, one-shot, for the earliest.
//! When it fires, the way back to the guest (`traps::exit`) scans for what expired: it raises
//! VIRQ_TIMER and wakes pollers there, and ends the slice here.

use core::sync::atomic::{AtomicU64, Ordering};

use super::run;
use crate::arch::{apic, time};

/// End of the running vCPU's time slice (ns), 0 when idle.
static SLICE_END: AtomicU64 = AtomicU64::new(0);
/// The deadline the APIC is armed for (ns), 0 = none.
static ARMED: AtomicU64 = AtomicU64::new(0);
/// No deadline is earlier than this (ns): the scan for expired timers is skipped until then.
/// Lowered by every new deadline; a deadline cancelled meanwhile only costs one needless scan.
static NEXT: AtomicU64 = AtomicU64::new(0);
/// Shortest delay the APIC is armed for: below this, the interrupt would race its own setup.
const MIN_DELAY_NS: u64 = 2_000;

/// The timer interrupt: the work itself is done on the way out (`traps::exit`).
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

/// Whether no deadline can have passed yet, so the scan for expired timers can be skipped:
/// none is due before `NEXT` and the APIC is armed. Cheap: it runs on every return to a guest.
pub fn none_due(now: u64) -> bool {
    now < NEXT.load(Ordering::Relaxed) && ARMED.load(Ordering::Relaxed) != 0
}

/// Ends the time slice if its end has passed (asking for a reschedule), then arms the APIC for
/// the earlier of the slice's end and `next`, the earliest guest deadline still ahead.
pub fn end_slice_and_rearm(now: u64, mut next: u64) {
    let slice = SLICE_END.load(Ordering::Relaxed);
    if slice != 0 {
        if slice <= now {
            SLICE_END.store(0, Ordering::Relaxed);
            run::request_resched();
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
