//! Guest time from the hypervisor's `vcpu_time_info` (read with the version protocol: retry
//! while the version is odd or changed), the wall clock from shared_info, and sleeping with
//! `set_timer_op` + block.

use core::sync::atomic::Ordering;

use hypercall_abi::guest;

use crate::arch::rdtsc;
use crate::events;

/// vcpu_info[0].time in shared_info.
const TIME: usize = 32;

/// System time in ns (the hypervisor's clock, shared by all domains).
pub fn now_ns() -> u64 {
    let s = events::shared_info();
    loop {
        let v1 = s.u32_at(TIME).load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let tsc_ts = s.u64_at(TIME + 8).load(Ordering::Acquire);
        let sys = s.u64_at(TIME + 16).load(Ordering::Acquire);
        let scale = s.u64_at(TIME + 24).load(Ordering::Acquire);
        let v2 = s.u32_at(TIME).load(Ordering::Acquire);
        if v1 != v2 {
            continue;
        }
        let mul = scale as u32;
        let shift = (scale >> 32) as u8 as i8;
        let mut delta = rdtsc().wrapping_sub(tsc_ts);
        if shift >= 0 {
            delta <<= shift;
        } else {
            delta >>= -shift;
        }
        return sys + ((u128::from(delta) * u128::from(mul)) >> 32) as u64;
    }
}

/// Wall-clock seconds since the epoch.
pub fn wallclock_secs() -> u64 {
    let s = events::shared_info();
    let sec = u64::from(s.u32_at(3076).load(Ordering::Acquire))
        | (u64::from(s.u32_at(3084).load(Ordering::Acquire)) << 32);
    sec + now_ns() / 1_000_000_000
}

/// Sleeps until system time `deadline_ns` (events that arrive meanwhile are dispatched).
pub fn sleep_until(deadline_ns: u64) {
    while now_ns() < deadline_ns {
        let _ = guest::set_timer_op(deadline_ns);
        events::wait();
    }
}

/// Sleeps for `ns`.
pub fn sleep_ns(ns: u64) {
    sleep_until(now_ns() + ns);
}
