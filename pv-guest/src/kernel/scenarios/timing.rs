//! Scheduling and time as a domU sees them: `hog` spins (for the fairness tests), `latency
//! period_ms=<p> samples=<n>` measures how late a periodic timer's events arrive, `timers` how
//! late single-shot timers of 1-20 ms fire (they must never fire early), and `yieldpair
//! iters=<n>` runs in two domains that yield to each other (the domain-switch benchmark).

use hypercall_abi::guest;
use pv_guest::{events, println, time};

pub fn hog() -> ! {
    println!("hog: spinning");
    let mut x = 0u64;
    loop {
        x = x.wrapping_add(1);
        core::hint::black_box(x);
    }
}

/// Percentile of a sorted slice.
fn pct(sorted: &[u64], p: usize) -> u64 {
    sorted.get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

pub fn latency(line: &str) {
    let period_ms: u64 = pv_guest::cmdline_param(line, "period_ms", 5);
    let samples: usize = pv_guest::cmdline_param(line, "samples", 200);
    let period = period_ms * 1_000_000;
    let mut late = alloc::vec::Vec::with_capacity(samples);
    let mut next = time::now_ns() + period;
    while late.len() < samples {
        let _ = guest::set_timer_op(next);
        while time::now_ns() < next {
            events::wait();
        }
        late.push(time::now_ns() - next);
        next += period;
    }
    late.sort_unstable();
    println!(
        "RESULT latency: samples {samples} period {period_ms} ms p50 {} us p90 {} us p99 {} us max {} us",
        pct(&late, 50) / 1000,
        pct(&late, 90) / 1000,
        pct(&late, 99) / 1000,
        late.last().copied().unwrap_or(0) / 1000
    );
}

pub fn timers() {
    let mut late = alloc::vec::Vec::new();
    let mut early = 0;
    for &ms in &[1u64, 2, 5, 10, 20] {
        for _ in 0..10 {
            let deadline = time::now_ns() + ms * 1_000_000;
            let seen = events::timer_events();
            let _ = guest::set_timer_op(deadline);
            // Wait for the timer's own event, not just the clock.
            while events::timer_events() == seen && time::now_ns() < deadline + 1_000_000_000 {
                events::wait();
            }
            let fired = time::now_ns();
            if fired < deadline {
                early += 1;
            }
            late.push(fired.saturating_sub(deadline));
        }
    }
    late.sort_unstable();
    println!(
        "RESULT timers: samples {} early {early} lateness p50 {} us p90 {} us p99 {} us max {} us",
        late.len(),
        pct(&late, 50) / 1000,
        pct(&late, 90) / 1000,
        pct(&late, 99) / 1000,
        late.last().copied().unwrap_or(0) / 1000
    );
}

/// Two domains yielding to each other: every yield is a hypercall and a switch to the other
/// domain, so a loop iteration here is two hypercalls and two domain switches.
pub fn yieldpair(line: &str) {
    let n: u64 = pv_guest::cmdline_param(line, "iters", 500);
    // Let the other domain start spinning too before measuring.
    for _ in 0..100 {
        let _ = guest::sched_yield();
    }
    let c = pv_guest::bench::measure(11, n, || {
        let _ = guest::sched_yield();
    });
    pv_guest::bench::bench_line("yield-pair-iteration", c);
}
