//! Scheduling and time: which vCPU runs, for how long, and what time it is.
//!
//! Hardware-free and host-tested: the credit policy (`credit`: who runs next and for how
//! long, weights, caps, boost) and each vCPU's runstate accounting (`runstate`). On the hardware, from the bottom up: this CPU's run state
//! (`run`, re-exported here: the current vCPU, wake-ups, blocks, pauses), the one hardware
//! timer behind every deadline (`timer`), guest time in `vcpu_time_info` and the wallclock
//! (`clock`), the guest areas kept up to date with runstate and time (`areas`), the context
//! switch (`switch`), and the hypercalls `sched_op` (yield, block,
//! poll, shutdown), `vcpu_op`/`set_timer_op` (`vcpu_op`) and setting the wall clock
//! (`platform_op`).
//!
//! The scheduler imports no event or lifecycle code: an event or a timer wakes a vCPU by
//! calling down into `run`, and the decision, the idle loop and the firing of expired
//! timers happen on the way back to a guest (`traps::exit`), above. Trusted: nothing a guest
//! passes; timer deadlines and poll sets are checked and clamped by the hypercalls.

#[cfg(target_os = "none")]
pub mod areas;
#[cfg(target_os = "none")]
pub mod clock;
pub mod credit;
#[cfg(target_os = "none")]
pub mod platform_op;
#[cfg(target_os = "none")]
mod run;
pub mod runstate;
#[cfg(target_os = "none")]
pub mod sched_op;
#[cfg(target_os = "none")]
pub mod switch;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod vcpu_op;

#[cfg(target_os = "none")]
pub use run::{
    add_vcpu, block, current, current_pair, domain_resumed, domain_stopped, params, register,
    remove_vcpu, request_resched, running, set_params, set_slice, take_resched, wake,
    yield_current,
};
