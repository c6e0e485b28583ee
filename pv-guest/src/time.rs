//! Guest time from the hypervisor's `vcpu_time_info` (read with the version protocol: retry
//! while the version is odd or changed), and sleeping with `set_timer_op` + block (a sleeper
//! also answers the toolstack's control requests when it wakes: `control::poll`).

use core::mem::offset_of;
use core::sync::atomic::Ordering;

use hypercall_abi::guest;
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo, scale_delta};

use crate::arch::rdtsc;
use crate::events;

/// vcpu_info[0].time in shared_info, and its fields.
const TIME: usize = offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time);
const VERSION: usize = TIME + offset_of!(VcpuTimeInfo, version);
const TSC_TIMESTAMP: usize = TIME + offset_of!(VcpuTimeInfo, tsc_timestamp);
const SYSTEM_TIME: usize = TIME + offset_of!(VcpuTimeInfo, system_time);
/// `tsc_to_system_mul` (low 32 bits) and `tsc_shift` (the byte after) read as one word.
const SCALE: usize = TIME + offset_of!(VcpuTimeInfo, tsc_to_system_mul);

/// A consistent (tsc_timestamp, system_time, mul, shift) from vcpu_info[0].time.
fn snapshot() -> (u64, u64, u32, i8) {
    let s = events::shared_info();
    loop {
        let v1 = s.u32_at(VERSION).load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let tsc_ts = s.u64_at(TSC_TIMESTAMP).load(Ordering::Acquire);
        let sys = s.u64_at(SYSTEM_TIME).load(Ordering::Acquire);
        let scale = s.u64_at(SCALE).load(Ordering::Acquire);
        if s.u32_at(VERSION).load(Ordering::Acquire) == v1 {
            return (tsc_ts, sys, scale as u32, (scale >> 32) as u8 as i8);
        }
    }
}

/// System time in ns (the hypervisor's clock, shared by all domains).
pub fn now_ns() -> u64 {
    let (tsc_ts, sys, mul, shift) = snapshot();
    sys + scale_delta(rdtsc().wrapping_sub(tsc_ts), mul, shift)
}

/// A TSC interval in ns, with the hypervisor's published scale.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    let (_, _, mul, shift) = snapshot();
    scale_delta(cycles, mul, shift)
}

/// Sleeps until system time `deadline_ns` (events that arrive meanwhile are dispatched).
pub fn sleep_until(deadline_ns: u64) {
    while now_ns() < deadline_ns {
        let _ = guest::set_timer_op(deadline_ns);
        events::wait();
        // What the toolstack asked meanwhile (shutdown, balloon target).
        crate::control::poll();
    }
}

/// Sleeps for `ns`.
pub fn sleep_ns(ns: u64) {
    sleep_until(now_ns() + ns);
}
