//! Time: the TSC, calibrated at boot against PIT channel 2, gives the hypervisor's system
//! time in nanoseconds since boot. The scale is kept as a 32.32 fixed-point multiplier and a
//! shift, the same form `vcpu_time_info` hands to guests.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// ns = (ticks * NS_MUL) >> 32: a multiply on every clock read instead of a 128-bit divide.
static NS_MUL: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear so it works in any ring.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads PIT channel 2's counter (latched), bracketed by TSC reads. The pair is trustworthy
/// only when the bracket is tight: under an emulator the vCPU can be descheduled anywhere.
fn pit_sample() -> (u64, u16, u64) {
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    let before = rdtsc();
    // SAFETY: latches and reads PIT channel 2's count, which only calibration uses.
    let count = unsafe {
        cmd.write(0b1000_0000);
        let lo = ch2.read();
        let hi = ch2.read();
        u16::from_le_bytes([lo, hi])
    };
    (before, count, rdtsc())
}

/// Measures the TSC rate against PIT channel 2 running free (mode 2, period 65536 ticks):
/// samples of (TSC, PIT count) are taken over about 20 ms of PIT time, keeping only samples
/// whose TSC bracket is tight, and the rate comes from the first and last good samples. A
/// short fixed window would be ruined by a single host descheduling of the emulator.
/// Returns the TSC frequency in Hz.
pub fn calibrate() -> u64 {
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: programs PIT channel 2 (speaker off, gate on) as a free-running rate generator.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0b1011_0100); // channel 2, lo/hi byte, mode 2, binary
        ch2.write(0);
        ch2.write(0);
    }
    let tight = |(a, _, b): (u64, u16, u64)| b.wrapping_sub(a) < 200_000;
    let mut first = None;
    for _ in 0..1000 {
        let s = pit_sample();
        if tight(s) {
            first = Some(s);
            break;
        }
    }
    let Some(first) = first else {
        TSC_HZ.store(2_000_000_000, Ordering::Relaxed);
        return 2_000_000_000;
    };
    // Accumulate PIT ticks across wraps until ~20 ms have passed.
    let mut pit_elapsed: u64 = 0;
    let mut last_count = first.1;
    let mut last_good = first;
    let mut good_elapsed = 0u64;
    let deadline = first.0.wrapping_add(20_000_000_000);
    while pit_elapsed < PIT_HZ / 50 && rdtsc() < deadline {
        let s = pit_sample();
        // The counter counts down and reloads at 0 (65536 ticks per period); samples come
        // far more often than one period, so the difference modulo 2^16 is the elapsed time.
        pit_elapsed += u64::from(last_count.wrapping_sub(s.1));
        last_count = s.1;
        if tight(s) {
            last_good = s;
            good_elapsed = pit_elapsed;
        }
    }
    let tsc_mid = |(a, _, b): (u64, u16, u64)| a + (b - a) / 2;
    let dtsc = tsc_mid(last_good).wrapping_sub(tsc_mid(first));
    let hz = if good_elapsed == 0 {
        2_000_000_000
    } else {
        (u128::from(dtsc) * u128::from(PIT_HZ) / u128::from(good_elapsed)) as u64
    };
    TSC_HZ.store(hz.max(1_000_000), Ordering::Relaxed);
    NS_MUL.store(
        ((1_000_000_000u128 << 32) / u128::from(hz.max(1_000_000))) as u64,
        Ordering::Relaxed,
    );
    hz
}

/// Sets the origin of system time.
pub fn mark_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// TSC frequency (0 until calibrated).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// TSC value at the origin of system time.
pub fn boot_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

/// Nanoseconds since boot (0 before calibration).
pub fn now_ns() -> u64 {
    ns_at_tsc(rdtsc())
}

/// System time at TSC value `tsc`.
pub fn ns_at_tsc(tsc: u64) -> u64 {
    let ticks = tsc.wrapping_sub(boot_tsc());
    ((u128::from(ticks) * u128::from(NS_MUL.load(Ordering::Relaxed))) >> 32) as u64
}
