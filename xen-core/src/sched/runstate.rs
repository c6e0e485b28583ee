//! A vCPU's runstate (Xen's `vcpu_runstate_info`): which of running, runnable, blocked or
//! offline it is in, since when, and how long it has spent in each, in system time. Linux
//! reads it (through `VCPUOP_register_runstate_memory_area`, which it cannot boot without) to
//! account stolen time.
//!
//! The accounting is hardware-free and host-tested; the hypervisor changes state at each
//! switch in and out and at wake-ups (`switch`, `run`), and copies the record into the area a
//! guest registered (`areas`).

use hypercall_abi::vcpu::{
    RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING, VcpuRunstateInfo,
};

/// A vCPU's runstate record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    info: VcpuRunstateInfo,
}

impl Runstate {
    /// A vCPU made at system time `now_ns`: offline until it first runs.
    pub fn new(now_ns: u64) -> Self {
        let info = VcpuRunstateInfo {
            state: RUNSTATE_OFFLINE,
            state_entry_time: now_ns,
            ..Default::default()
        };
        Runstate { info }
    }

    /// Enters `state` at `now_ns` (times never run backwards: an earlier `now_ns` counts as
    /// no time spent). Entering the state it is in changes nothing.
    pub fn enter(&mut self, state: i32, now_ns: u64) {
        if state == self.info.state {
            return;
        }
        let spent = now_ns.saturating_sub(self.info.state_entry_time);
        if let Some(t) =
            usize::try_from(self.info.state).ok().and_then(|i| self.info.time.get_mut(i))
        {
            *t += spent;
        }
        self.info.state = state;
        self.info.state_entry_time = self.info.state_entry_time.max(now_ns);
    }

    pub fn state(&self) -> i32 {
        self.info.state
    }

    /// The record as the guest sees it.
    pub fn info(&self) -> VcpuRunstateInfo {
        self.info
    }
}

/// The state a vCPU that stopped running is in.
pub fn after_running(is_up: bool, is_blocked: bool) -> i32 {
    if !is_up {
        RUNSTATE_OFFLINE
    } else if is_blocked {
        RUNSTATE_BLOCKED
    } else {
        RUNSTATE_RUNNABLE
    }
}

pub const RUNNING: i32 = RUNSTATE_RUNNING;
pub const RUNNABLE: i32 = RUNSTATE_RUNNABLE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_in_each_state_adds_up_to_system_time() {
        let mut r = Runstate::new(100);
        r.enter(RUNNABLE, 150);
        r.enter(RUNNING, 200);
        r.enter(RUNSTATE_BLOCKED, 500);
        r.enter(RUNSTATE_BLOCKED, 600);
        r.enter(RUNNABLE, 700);
        let i = r.info();
        assert_eq!(i.state, RUNNABLE);
        assert_eq!(i.state_entry_time, 700);
        assert_eq!(i.time, [300, 50, 200, 50]);
        assert_eq!(i.time.iter().sum::<u64>() + 100, 700);
        // A clock read that went backwards counts as nothing, never as a huge span.
        r.enter(RUNNING, 650);
        assert_eq!(r.info().time[1], 50);
        assert_eq!(r.info().state_entry_time, 700);
    }

    #[test]
    fn a_stopped_vcpu_is_offline_blocked_or_runnable() {
        assert_eq!(after_running(false, true), RUNSTATE_OFFLINE);
        assert_eq!(after_running(true, true), RUNSTATE_BLOCKED);
        assert_eq!(after_running(true, false), RUNNABLE);
    }
}
