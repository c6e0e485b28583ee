//! Multi-domain scenarios a `pv-guest` domU runs when its command line says
//! `scenario=<name>` (with `key=value` parameters), for the system tests of scheduling, time,
//! event channels and grants. Each prints `RESULT <name>: ...` lines the tests parse.
//!
//! - `pingpong role=ping|pong peer=<domid> rounds=<n> [die_after=<n>]`: the two domains
//!   exchange `rounds` payloads through a page `ping` grants to `pong` (ref 8) and an event
//!   channel (`ping` allocates it for `pong`; `pong` finds it by trying to bind the first
//!   ports, which only succeeds on one offered to it). Both print the checksum of the payloads,
//!   which must agree.
//! - `hog`: spins until shut down (for the fairness tests).
//! - `latency period_ms=<p> samples=<n>`: how late a periodic timer's events arrive.
//! - `timers`: how late single-shot timers of 1-20 ms fire (they must never fire early).
//! - `yieldpair iters=<n>`: two of these yield to each other (domain-switch benchmark).

use core::sync::atomic::Ordering;

use hypercall_abi::event_channel::EvtchnStatusDetail;
use hypercall_abi::guest;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};

use crate::{events, grant, mm, println, time};

fn param<T: core::str::FromStr>(line: &str, key: &str, default: T) -> T {
    crate::cmdline_value(line, key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the scenario named on the command line, if any.
pub fn run(line: &str) {
    match crate::cmdline_value(line, "scenario") {
        Some("pingpong") => pingpong(line),
        Some("hog") => hog(),
        Some("latency") => latency(line),
        Some("timers") => timers(),
        Some("yieldpair") => yieldpair(line),
        Some("hostile") => crate::hostile::run(),
        Some("victim") => crate::hostile::victim(param(line, "seconds", 5)),
        Some(other) => println!("RESULT {other}: FAIL unknown scenario"),
        None => {}
    }
}

/// The payload of round `i` (a cheap mix so a lost or repeated round changes the sum).
fn payload(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

const COUNTER: usize = 0;
const PAYLOAD: usize = 8;
const READY: usize = 16;

const PROBE_PORTS: u32 = 16;

const PINGPONG_GREF: GrantRef = GrantRef(8);

fn pingpong(line: &str) {
    let peer = DomId(param(line, "peer", 2u16));
    let rounds: u64 = param(line, "rounds", 1000);
    let die_after: u64 = param(line, "die_after", u64::MAX);
    let is_ping = crate::cmdline_value(line, "role") == Some("ping");
    let t0 = time::now_ns();
    let (page, port) = if is_ping {
        let page = mm::alloc_page().expect("a page to share");
        let gref = grant::alloc_ref().expect("a grant ref");
        assert_eq!(gref, PINGPONG_GREF, "first free grant ref");
        grant::grant_access(gref, peer, page.mfn, false);
        let port = events::alloc_unbound(peer, |_| {}).expect("alloc_unbound");
        println!("pingpong: ping port {} gref {} for d{}", port.0, gref.0, peer.0);
        (page.shared(), port)
    } else {
        // The hypervisor lets us bind only a port the peer offered to us, so probing the first
        // few finds it without a directory service.
        let port = 'found: loop {
            for remote in 1..PROBE_PORTS {
                if let Ok(p) = events::bind_interdomain(peer, EvtchnPort(remote), |_| {}) {
                    break 'found p;
                }
            }
            time::sleep_ns(1_000_000);
        };
        let m = loop {
            match grant::map(peer, PINGPONG_GREF, false) {
                Ok(m) => break m,
                Err(_) => time::sleep_ns(1_000_000),
            }
        };
        m.page.u64_at(READY).store(1, Ordering::Release);
        let _ = events::send(port);
        (m.page, port)
    };
    let counter = page.u64_at(COUNTER);
    let data = page.u64_at(PAYLOAD);
    let mut sum = 0u64;
    let mut done = 0u64;
    if is_ping {
        // Wait until pong has bound and mapped (it says so in the page: a notification alone
        // could be consumed by the upcall before this loop looks).
        while page.u64_at(READY).load(Ordering::Acquire) == 0 {
            events::wait();
        }
        let mut batch_start = crate::arch::rdtsc();
        let mut batches = alloc::vec::Vec::new();
        for i in 0..rounds {
            if i > 0 && i % 1000 == 0 {
                let now = crate::arch::rdtsc();
                batches.push((now - batch_start) / 1000);
                batch_start = now;
            }
            if i == die_after {
                println!("pingpong: ping dies after {i} rounds");
                crate::shutdown(hypercall_abi::sched::SHUTDOWN_CRASH);
            }
            let p = payload(i);
            data.store(p, Ordering::Relaxed);
            counter.store(2 * i + 1, Ordering::Release);
            sum = sum.wrapping_add(p);
            let _ = events::send(port);
            while counter.load(Ordering::Acquire) != 2 * i + 2 {
                events::wait();
            }
            done = i + 1;
        }
        if !batches.is_empty() {
            batches.sort_unstable();
            crate::selftest::bench_line("evtchn-round-trip-2dom", batches[batches.len() / 2]);
        }
    } else {
        let mut i = 0;
        while i < rounds {
            let deadline = time::now_ns() + 200_000_000;
            while counter.load(Ordering::Acquire) != 2 * i + 1 {
                let _ = guest::set_timer_op(deadline);
                events::wait();
                if time::now_ns() >= deadline {
                    let st = guest::evtchn_status(DomId::SELF_, port).map(|s| s.detail());
                    if !matches!(st, Ok(EvtchnStatusDetail::Interdomain { .. })) {
                        println!(
                            "RESULT peer-death: pong saw its peer go after {i} rounds: port {:?}",
                            st
                        );
                        println!("pingpong: pong still running");
                        time::sleep_ns(50_000_000);
                        println!("RESULT peer-death: PASS pong carried on");
                        return;
                    }
                    break;
                }
            }
            if counter.load(Ordering::Acquire) != 2 * i + 1 {
                continue;
            }
            sum = sum.wrapping_add(data.load(Ordering::Relaxed));
            counter.store(2 * i + 2, Ordering::Release);
            let _ = events::send(port);
            i += 1;
            done = i;
        }
    }
    let ns = time::now_ns() - t0;
    println!(
        "RESULT pingpong: role {} rounds {done} checksum {sum:#018x} in {} ms ({} ns per round trip)",
        if is_ping { "ping" } else { "pong" },
        ns / 1_000_000,
        ns / done.max(1)
    );
}

fn hog() -> ! {
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

fn latency(line: &str) {
    let period_ms: u64 = param(line, "period_ms", 5);
    let samples: usize = param(line, "samples", 200);
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

fn timers() {
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
fn yieldpair(line: &str) {
    let n: u64 = param(line, "iters", 500);
    // Let the other domain start spinning too before measuring.
    for _ in 0..100 {
        let _ = guest::sched_yield();
    }
    let c = crate::selftest::measure(11, n, || {
        let _ = guest::sched_yield();
    });
    crate::selftest::bench_line("yield-pair-iteration", c);
}
