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

use crate::memory::shared;
use hypercall_abi::event_channel::EvtchnStatusDetail;
use hypercall_abi::guest;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};

use crate::{events, grant, memory::pages, println, time};

/// Runs the scenario named on the command line, if any.
pub fn run(line: &str) {
    match crate::cmdline_value(line, "scenario") {
        Some("pingpong") => pingpong(line),
        Some("hog") => hog(),
        Some("latency") => latency(line),
        Some("timers") => timers(),
        Some("yieldpair") => yieldpair(line),
        Some("hostile") => crate::hostile::run(),
        Some("xenstore") => xenstore_test(line),
        Some("grants") => grants(line),
        Some("vcons") => vcons(line),
        Some("flood") => flood(line),
        Some("ticker") => ticker(line),
        Some("corrupt-console") => corrupt_console(),
        Some("storm") => storm(line),
        Some("echo") => echo(line),
        Some("drvbench") => crate::drvbench::run(line),
        Some("victim") => crate::hostile::victim(crate::cmdline_param(line, "seconds", 5)),
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
    let peer = DomId(crate::cmdline_param(line, "peer", 2u16));
    let rounds: u64 = crate::cmdline_param(line, "rounds", 1000);
    let die_after: u64 = crate::cmdline_param(line, "die_after", u64::MAX);
    let is_ping = crate::cmdline_value(line, "role") == Some("ping");
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
            crate::bench::bench_line("evtchn-round-trip-2dom", batches[batches.len() / 2]);
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
    let period_ms: u64 = crate::cmdline_param(line, "period_ms", 5);
    let samples: usize = crate::cmdline_param(line, "samples", 200);
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
    let n: u64 = crate::cmdline_param(line, "iters", 500);
    // Let the other domain start spinning too before measuring.
    for _ in 0..100 {
        let _ = guest::sched_yield();
    }
    let c = crate::bench::measure(11, n, || {
        let _ = guest::sched_yield();
    });
    crate::bench::bench_line("yield-pair-iteration", c);
}

/// XenStore from a domU: its home, permissions, a watch, a transaction conflict, quotas.
pub fn xenstore_test(line: &str) {
    use crate::xenstore::{self, Store, XsError};
    let peer: u16 = crate::cmdline_param(line, "peer", 0);
    let r = xenstore::with(|xs| -> Result<(), alloc::string::String> {
        let e = |what: &str, err: XsError| alloc::format!("{what}: {}", err.0);
        let name = xs.read_str(0, "name").map_err(|x| e("read name", x))?;
        println!("xenstore: my name is {name}");
        xs.write(0, "data/hello", b"world").map_err(|x| e("write", x))?;
        if xs.read(0, "data/hello").map_err(|x| e("read back", x))? != b"world" {
            return Err("read back differs".into());
        }
        // Another domain's node: EACCES, not its contents and not ENOENT.
        if peer != 0 {
            match xs.read(0, &alloc::format!("/local/domain/{peer}/name")) {
                Err(XsError(n)) if n == "EACCES" => {
                    println!("RESULT xenstore-perms: PASS reading d{peer}'s name: EACCES")
                }
                other => {
                    println!("RESULT xenstore-perms: FAIL reading d{peer}'s name gave {other:?}")
                }
            }
        }
        // A watch fires once when set, then on a write below it.
        xs.watch("data/w", "tok").map_err(|x| e("watch", x))?;
        xs.write(0, "data/w/x", b"1").map_err(|x| e("write w", x))?;
        let mut seen = alloc::vec::Vec::new();
        let deadline = time::now_ns() + 2_000_000_000;
        while seen.len() < 2 && time::now_ns() < deadline {
            match xs.watch_event() {
                Some(ev) => seen.push(ev),
                None => {
                    let _ = guest::set_timer_op(time::now_ns() + 10_000_000);
                    events::wait();
                }
            }
        }
        println!(
            "RESULT xenstore-watch: {} {:?}",
            if seen.iter().any(|(p, t)| p == "data/w/x" && t == "tok") { "PASS" } else { "FAIL" },
            seen
        );
        // A transaction that read a node someone else changed must not commit.
        xs.write(0, "data/t", b"0").map_err(|x| e("write t", x))?;
        let tx = xs.transaction_start().map_err(|x| e("tx start", x))?;
        let _ = xs.read(tx, "data/t").map_err(|x| e("tx read", x))?;
        xs.write(0, "data/t", b"outside").map_err(|x| e("write outside", x))?;
        xs.write(tx, "data/t", b"inside").map_err(|x| e("tx write", x))?;
        match xs.transaction_end(tx, true) {
            Err(XsError(n)) if n == "EAGAIN" => {
                println!("RESULT xenstore-transaction: PASS conflict gave EAGAIN")
            }
            other => println!("RESULT xenstore-transaction: FAIL commit gave {other:?}"),
        }
        if xs.read(0, "data/t").map_err(|x| e("read t", x))? != b"outside" {
            return Err("the failed transaction's write leaked".into());
        }
        // Quota: a domU cannot fill dom0's memory with nodes.
        let mut refused = None;
        for i in 0..3000 {
            if let Err(err) = xs.write(0, &alloc::format!("data/q/{i}"), b"x") {
                refused = Some((i, err.0));
                break;
            }
        }
        println!("RESULT xenstore-quota: {:?}", refused);
        Ok(())
    });
    match r {
        Some(Ok(())) => println!("RESULT xenstore: PASS"),
        Some(Err(why)) => println!("RESULT xenstore: FAIL {why}"),
        None => println!("RESULT xenstore: FAIL no XenStore connection"),
    }
}

/// Grants between two domUs: `role=granter peer=<domid>` grants two pages (one read-only),
/// `role=grantee peer=<domid>` maps, copies and tries every refusal.
pub fn grants(line: &str) {
    use hypercall_abi::grant_table::*;
    let peer = DomId(crate::cmdline_param(line, "peer", 0u16));
    if crate::cmdline_value(line, "role") == Some("granter") {
        let rw = pages::alloc_page().expect("page");
        let ro = pages::alloc_page().expect("page");
        rw.shared().u64_at(0).store(0x1111, Ordering::Relaxed);
        ro.shared().u64_at(0).store(0x2222, Ordering::Relaxed);
        let (g1, g2) = (grant::alloc_ref().expect("ref"), grant::alloc_ref().expect("ref"));
        grant::grant_access(g1, peer, rw.mfn(), false);
        grant::grant_access(g2, peer, ro.mfn(), true);
        // A third ref granted to somebody else (dom0): the grantee must be refused it.
        let other = grant::alloc_ref().expect("ref");
        grant::grant_access(other, DomId(0), rw.mfn(), false);
        println!(
            "grants: granted refs {} (rw) {} (ro) to d{}, {} to d0",
            g1.0, g2.0, peer.0, other.0
        );
        // Wait until the grantee wrote through its mapping, then end access.
        let deadline = time::now_ns() + 20_000_000_000;
        while rw.shared().u64_at(8).load(Ordering::Acquire) != 0xBEEF && time::now_ns() < deadline {
            time::sleep_ns(5_000_000);
        }
        let mut ended = false;
        while !ended && time::now_ns() < deadline {
            ended = grant::end_access(g1);
            time::sleep_ns(5_000_000);
        }
        println!(
            "RESULT grants-granter: saw write {:#x}, access ended {ended}",
            rw.shared().u64_at(8).load(Ordering::Acquire)
        );
        return;
    }
    let fails = core::cell::RefCell::new(alloc::vec::Vec::<alloc::string::String>::new());
    let check = |what: &str, got: i16, want: i16| {
        if got != want {
            fails
                .borrow_mut()
                .push(alloc::format!("{what}: {got} ({:?}) != {want}", gntst_name(got)));
        }
    };
    let (g1, g2, other) = (GrantRef(8), GrantRef(9), GrantRef(10));
    // The granter may not have granted yet: retry the first map for a while.
    let deadline = time::now_ns() + 10_000_000_000;
    let m = loop {
        match grant::map(peer, g1, false) {
            Ok(m) => break Some(m),
            Err(_) if time::now_ns() < deadline => time::sleep_ns(5_000_000),
            Err(_) => break None,
        }
    };
    let Some(m) = m else {
        println!("RESULT grants: FAIL could not map ref 8 of d{}", peer.0);
        return;
    };
    check("map rw", 0, 0);
    if m.page().u64_at(0).load(Ordering::Relaxed) != 0x1111 {
        fails.borrow_mut().push("mapped page has the wrong contents".into());
    }
    // Refusals.
    check(
        "write through a readonly grant",
        grant::map(peer, g2, false).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "ref granted to another domain",
        grant::map(peer, other, true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "ref out of range",
        grant::map(peer, GrantRef(1_000_000), true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_BAD_GNTREF,
    );
    check(
        "a domain that does not exist",
        grant::map(DomId(999), g1, true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_BAD_DOMAIN,
    );
    check(
        "unused ref",
        grant::map(peer, GrantRef(100), true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    let ro = grant::map(peer, g2, true);
    check("map ro", ro.map(|_| 0).unwrap_or_else(|s| s), 0);
    // Copy: from the read-only grant into a page of ours, and from ours into the rw grant.
    let mine = pages::alloc_page().expect("page");
    use grant::CopyDir::{FromGrant, ToGrant};
    check("copy from a grant", grant::copy(&mine, 0, peer, g2, 0, 8, FromGrant), 0);
    if mine.shared().u64_at(0).load(Ordering::Relaxed) != 0x2222 {
        fails.borrow_mut().push("copy did not bring the data".into());
    }
    check(
        "copy into a readonly grant",
        grant::copy(&mine, 0, peer, g2, 0, 8, ToGrant),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "copy across a page end",
        grant::copy(&mine, 4000, peer, g1, 0, 200, ToGrant),
        GNTST_BAD_COPY_ARG,
    );
    // Write through the rw mapping, unmap, and unmapping twice is a bad handle.
    m.page().u64_at(8).store(0xBEEF, Ordering::Release);
    let (va, handle) = (m.page().va(), m.handle());
    check("unmap", grant::unmap(m).map(|_| 0).unwrap_or_else(|s| s), 0);
    #[allow(unsafe_code)]
    // SAFETY: the mapping at `va` is gone (unmapped just above) and nothing mapped since.
    let again = unsafe { grant::unmap_handle(va, handle) };
    check("unmap twice", again, GNTST_BAD_HANDLE);
    let fails = fails.into_inner();
    if fails.is_empty() {
        println!("RESULT grants: PASS");
    } else {
        println!("RESULT grants: FAIL {fails:?}");
    }
}

/// The secondary console over xenbus: `lines` lines, reconnecting if the backend restarts.
pub fn vcons(line: &str) {
    let lines: u64 = crate::cmdline_param(line, "lines", 20);
    let dom = crate::xenstore::with(|xs| crate::xenbus::read_u64(xs, "domid")).flatten();
    let Some(dom) = dom.and_then(|d| u16::try_from(d).ok()) else {
        println!("RESULT vcons: FAIL no domid in XenStore");
        return;
    };
    let r = crate::xenstore::with(|xs| -> Result<u32, alloc::string::String> {
        let mut v = crate::frontends::vcons::Vcons::connect(xs, dom, 1)?;
        for i in 0..lines {
            v.write_line(xs, &alloc::format!("vcons line {i}"))?;
            time::sleep_ns(2_000_000);
        }
        Ok(v.reconnects)
    });
    match r {
        Some(Ok(n)) => println!("RESULT vcons: PASS {lines} lines, {n} reconnects"),
        Some(Err(e)) => println!("RESULT vcons: FAIL {e}"),
        None => println!("RESULT vcons: FAIL no XenStore"),
    }
}

/// Prints as fast as it can for `seconds` (a console flood).
pub fn flood(line: &str) {
    let secs: u64 = crate::cmdline_param(line, "seconds", 3);
    let end = time::now_ns() + secs * 1_000_000_000;
    let mut n = 0u64;
    let t0 = time::now_ns();
    while time::now_ns() < end {
        println!("flood {n} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        n += 1;
    }
    let dt = (time::now_ns() - t0).max(1);
    println!("RESULT flood: {n} lines, {} bytes/s", n * 80 * 1_000_000_000 / dt);
}

/// Prints `count` numbered lines, one every `period_ms`.
pub fn ticker(line: &str) {
    let count: u64 = crate::cmdline_param(line, "count", 20);
    let period: u64 = crate::cmdline_param(line, "period_ms", 50);
    for i in 0..count {
        println!("tick {i}");
        time::sleep_ns(period * 1_000_000);
    }
    println!("RESULT ticker: done");
}

/// Corrupts its own console ring's producer index (as a hostile guest would), then pokes dom0.
pub fn corrupt_console() {
    let si = crate::start_info();
    let c = si.console.domu();
    let page = shared::own_page_for(c.mfn.0).expect("console page");
    println!("corrupt: about to break my console ring");
    let out_prod = page.u32_at(hypercall_abi::console::OUT_PROD);
    out_prod.store(out_prod.load(Ordering::Relaxed).wrapping_add(100_000), Ordering::Release);
    let _ = events::send(c.evtchn);
    time::sleep_ns(200_000_000);
    let _ = guest::console_io_write(b"corrupt: still running after breaking my console\n");
}

/// Sends events on its console port as fast as it can for `seconds`, moving no data.
pub fn storm(line: &str) {
    let secs: u64 = crate::cmdline_param(line, "seconds", 2);
    let port = crate::start_info().console.domu().evtchn;
    let end = time::now_ns() + secs * 1_000_000_000;
    let mut n = 0u64;
    while time::now_ns() < end {
        let _ = guest::evtchn_send(port);
        n += 1;
    }
    let _ = guest::console_io_write(
        alloc::format!("storm: sent {n} events, still running\n").as_bytes(),
    );
}

/// Echoes console input lines until it has seen `lines` of them.
pub fn echo(line: &str) {
    let want: u64 = crate::cmdline_param(line, "lines", 1);
    println!("echo: ready");
    let mut got = 0;
    let mut buf = [0u8; 128];
    let mut cur = alloc::vec::Vec::new();
    let deadline = time::now_ns() + 60_000_000_000;
    while got < want && time::now_ns() < deadline {
        let n = crate::console::read_input(&mut buf);
        for &b in &buf[..n] {
            if b == b'\n' {
                println!("echo: got '{}'", alloc::string::String::from_utf8_lossy(&cur));
                cur.clear();
                got += 1;
            } else {
                cur.push(b);
            }
        }
        if n == 0 {
            let _ = guest::set_timer_op(time::now_ns() + 20_000_000);
            events::wait();
        }
    }
}
