//! Guest time: each vCPU's `vcpu_time_info` (system time and the TSC scale, written with
//! Xen's version protocol: odd while updating) and each domain's wallclock in shared_info,
//! taken from the RTC at boot and set by the privileged domain (`platform_op` settime).

use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::shared_info::{SharedInfo, XEN_PVCLOCK_TSC_STABLE_BIT, tsc_scale_for_hz};

use crate::arch::{rtc, time};
use crate::domain::{Domain, VI_TIME, Vcpu};
use crate::mm::machine;

/// Wall-clock nanoseconds (Unix epoch) at system time 0.
static WALL_AT_BOOT_NS: AtomicU64 = AtomicU64::new(0);
/// The `tsc_to_system_mul | tsc_shift << 32 | flags << 40` word every vcpu_time_info gets,
/// worked out once from the calibrated TSC (0 until then).
static SCALE_WORD: AtomicU64 = AtomicU64::new(0);

/// Reads the RTC and records the wall clock at system time 0; fixes the published TSC scale
/// (the TSC is calibrated by now).
pub fn init() -> u64 {
    if let Some((mul, shift)) = tsc_scale_for_hz(time::tsc_hz()) {
        let flags = u64::from(XEN_PVCLOCK_TSC_STABLE_BIT) << 40;
        SCALE_WORD
            .store(u64::from(mul) | (u64::from(shift as u8) << 32) | flags, Ordering::Relaxed);
    }
    let secs = rtc::read_unix_seconds().unwrap_or(0);
    let at_boot = (secs.saturating_mul(NS)).saturating_sub(time::now_ns());
    WALL_AT_BOOT_NS.store(at_boot, Ordering::Relaxed);
    secs
}

/// Writes `v`'s vcpu_time_info for the current TSC.
pub fn publish(v: &Vcpu) {
    let scale = SCALE_WORD.load(Ordering::Relaxed);
    if scale == 0 {
        return;
    }
    let tsc = time::rdtsc();
    let system_time = time::ns_at_tsc(tsc);
    let w = |i: usize| v.info_word(VI_TIME + i * 8);
    let head = w(0);
    let version = (head.load(Ordering::Relaxed) as u32).wrapping_add(1) | 1;
    // Odd version: the guest retries while the record changes under it.
    head.store(u64::from(version), Ordering::SeqCst);
    w(1).store(tsc, Ordering::SeqCst);
    w(2).store(system_time, Ordering::SeqCst);
    w(3).store(scale, Ordering::SeqCst);
    head.store(u64::from(version.wrapping_add(1)), Ordering::SeqCst);
}

const NS: u64 = 1_000_000_000;

/// The wall clock reads `secs.nsecs` at system time `system_time` (ns): as Xen's
/// `do_settime`, the time at system time 0 follows (clamped at the epoch) and every domain's
/// shared_info gets it.
pub fn settime(secs: u64, nsecs: u32, system_time: u64) {
    let at = secs.saturating_mul(NS).saturating_add(u64::from(nsecs)).saturating_sub(system_time);
    WALL_AT_BOOT_NS.store(at, Ordering::Relaxed);
    crate::domain::for_each(|d| publish_wallclock(d));
}

/// Writes the domain's wallclock (wc_sec/wc_nsec at system time 0) in shared_info.
pub fn publish_wallclock(d: &Domain) {
    let at = WALL_AT_BOOT_NS.load(Ordering::Relaxed);
    let (secs, nsecs) = (at / NS, at % NS);
    // wc_version and wc_sec share one word, wc_nsec and wc_sec_hi the next.
    let w0 = machine::frame_word(d.shared_info, offset_of!(SharedInfo, wc_version) / 8);
    let w1 = machine::frame_word(d.shared_info, offset_of!(SharedInfo, wc_nsec) / 8);
    let version = (w0.load(Ordering::Relaxed) as u32).wrapping_add(1) | 1;
    w0.store(u64::from(version) | ((secs & 0xFFFF_FFFF) << 32), Ordering::SeqCst);
    w1.store(nsecs | ((secs >> 32) << 32), Ordering::SeqCst);
    w0.store(u64::from(version.wrapping_add(1)) | ((secs & 0xFFFF_FFFF) << 32), Ordering::SeqCst);
}
