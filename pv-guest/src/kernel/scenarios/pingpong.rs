//! `scenario=pingpong role=ping|pong peer=<domid> rounds=<n> [die_after=<n>]`: two domains
//! exchange `rounds` payloads through a page `ping` grants to `pong` (ref 8) and an event
//! channel (`ping` allocates it for `pong`; `pong` finds it by trying to bind the first ports,
//! which only succeeds on one offered to it). Both print the checksum of the payloads, which
//! must agree; `ping` also prints the round-trip time as a `BENCH` line. With `die_after`,
//! `ping` crashes mid-exchange and `pong` must notice its peer's port closing and carry on.

use core::sync::atomic::Ordering;

use hypercall_abi::event_channel::EvtchnStatusDetail;
use hypercall_abi::guest;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::memory::pages;
use pv_guest::{events, grant, println, time};

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

pub fn pingpong(line: &str) {
    let peer = DomId(pv_guest::cmdline_param(line, "peer", 2u16));
    let rounds: u64 = pv_guest::cmdline_param(line, "rounds", 1000);
    let die_after: u64 = pv_guest::cmdline_param(line, "die_after", u64::MAX);
    let is_ping = pv_guest::cmdline_value(line, "role") == Some("ping");
    let t0 = time::now_ns();
    let (page, port) = if is_ping {
        let page = pages::alloc_page().expect("a page to share");
        let gref = grant::alloc_ref().expect("a grant ref");
        assert_eq!(gref, PINGPONG_GREF, "first free grant ref");
        grant::grant_access(gref, peer, page.mfn(), false);
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
        m.page().u64_at(READY).store(1, Ordering::Release);
        let _ = events::send(port);
        (m.page(), port)
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
        let mut batch_start = pv_guest::arch::rdtsc();
        let mut batches = alloc::vec::Vec::new();
        for i in 0..rounds {
            if i > 0 && i % 1000 == 0 {
                let now = pv_guest::arch::rdtsc();
                batches.push((now - batch_start) / 1000);
                batch_start = now;
            }
            if i == die_after {
                println!("pingpong: ping dies after {i} rounds");
                pv_guest::shutdown(hypercall_abi::sched::SHUTDOWN_CRASH);
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
            pv_guest::bench::bench_line("evtchn-round-trip-2dom", batches[batches.len() / 2]);
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
