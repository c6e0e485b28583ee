//! The local APIC (xAPIC, memory mapped through a fixed uncached mapping): enabled at boot,
//! its timer calibrated against the TSC and used in one-shot mode for every deadline the
//! hypervisor has (scheduler slices, guest timers, poll timeouts).

use core::sync::atomic::{AtomicU64, Ordering};

use super::layout::FIXMAP_APIC;
use super::time;

const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_TPR: u64 = 0x80;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CUR: u64 = 0x390;
const REG_TIMER_DIV: u64 = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u64 = 0xF0;
/// Vector of spurious APIC interrupts.
pub const SPURIOUS_VECTOR: u64 = 0xFF;

/// Timer ticks per second (after the divide-by-16).
static APIC_HZ: AtomicU64 = AtomicU64::new(0);

fn read(reg: u64) -> u32 {
    // SAFETY: FIXMAP_APIC maps the local APIC page uncached (paging::build); `reg` is an
    // architectural register offset inside it; 32-bit aligned volatile access as required.
    unsafe { ((FIXMAP_APIC + reg) as *const u32).read_volatile() }
}

fn write(reg: u64, value: u32) {
    // SAFETY: as in `read`.
    unsafe { ((FIXMAP_APIC + reg) as *mut u32).write_volatile(value) }
}

/// Enables the APIC and measures its timer against the TSC (which must be calibrated).
pub fn init() -> u64 {
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_TPR, 0);
    write(REG_TIMER_DIV, 0x3); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, u32::MAX);
    // (TSC before, count, TSC after): only samples with a tight bracket are trusted, since the
    // emulator can be descheduled between any two instructions.
    let sample = || {
        let a = time::rdtsc();
        let c = read(REG_TIMER_CUR);
        (a, c, time::rdtsc())
    };
    let tight = |(a, _, b): (u64, u32, u64)| b.wrapping_sub(a) < 200_000;
    let tsc_hz = time::tsc_hz();
    let window = tsc_hz / 100; // 10 ms
    let mut first = sample();
    for _ in 0..1000 {
        if tight(first) {
            break;
        }
        first = sample();
    }
    let mut last = first;
    while time::rdtsc().wrapping_sub(first.0) < window {
        let s = sample();
        if tight(s) {
            last = s;
        }
    }
    write(REG_TIMER_INIT, 0);
    let ticks = u64::from(first.1 - last.1);
    let dtsc = (last.0 + last.2) / 2 - (first.0 + first.2) / 2;
    let hz = if dtsc == 0 {
        1_000_000
    } else {
        (u128::from(ticks) * u128::from(tsc_hz) / u128::from(dtsc)) as u64
    };
    let hz = hz.max(1000);
    APIC_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Arms the timer to fire once, `delta_ns` from now (0 disarms it).
pub fn set_oneshot(delta_ns: u64) {
    if delta_ns == 0 {
        write(REG_TIMER_INIT, 0);
        return;
    }
    let hz = APIC_HZ.load(Ordering::Relaxed);
    let ticks =
        (u128::from(delta_ns) * u128::from(hz) / 1_000_000_000).clamp(1, u128::from(u32::MAX));
    write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, ticks as u32);
}

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// This CPU's local APIC id (where the IOAPIC sends device interrupts).
pub fn id() -> u32 {
    read(REG_ID) >> 24
}
