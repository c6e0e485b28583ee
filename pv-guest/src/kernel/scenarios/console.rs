//! Consoles from a domU's side, for the tests of dom0's back ends: a secondary console over
//! xenbus (`vcons lines=<n>`, reconnecting if the back end restarts), output floods (`flood
//! seconds=<s>`) and paced lines (`ticker count=<n> period_ms=<p>`), a hostile guest that
//! corrupts its console ring (`corrupt-console`) or storms its console port with events
//! (`storm seconds=<s>`), and input from dom0 (`echo lines=<n>`).

use core::sync::atomic::Ordering;

use hypercall_abi::guest;
use pv_guest::memory::shared;
use pv_guest::{events, println, time};

/// The secondary console over xenbus: `lines` lines, reconnecting if the backend restarts.
pub fn vcons(line: &str) {
    let lines: u64 = pv_guest::cmdline_param(line, "lines", 20);
    let dom = pv_guest::xenstore::with(|xs| pv_guest::xenbus::read_u64(xs, "domid")).flatten();
    let Some(dom) = dom.and_then(|d| u16::try_from(d).ok()) else {
        println!("RESULT vcons: FAIL no domid in XenStore");
        return;
    };
    let r = pv_guest::xenstore::with(|xs| -> Result<u32, alloc::string::String> {
        let mut v = pv_guest::frontends::vcons::Vcons::connect(xs, dom, 1)?;
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
    let secs: u64 = pv_guest::cmdline_param(line, "seconds", 3);
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
    let count: u64 = pv_guest::cmdline_param(line, "count", 20);
    let period: u64 = pv_guest::cmdline_param(line, "period_ms", 50);
    for i in 0..count {
        println!("tick {i}");
        time::sleep_ns(period * 1_000_000);
    }
    println!("RESULT ticker: done");
}

/// Corrupts its own console ring's producer index (as a hostile guest would), then pokes dom0.
pub fn corrupt_console() {
    let si = pv_guest::start_info();
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
    let secs: u64 = pv_guest::cmdline_param(line, "seconds", 2);
    let port = pv_guest::start_info().console.domu().evtchn;
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

/// Echoes console input lines (empty ones skipped) until it has seen `lines` of them.
pub fn echo(line: &str) {
    let want: u64 = pv_guest::cmdline_param(line, "lines", 1);
    println!("echo: ready");
    let mut got = 0;
    let mut buf = [0u8; 128];
    let mut cur = alloc::vec::Vec::new();
    let deadline = time::now_ns() + 60_000_000_000;
    while got < want && time::now_ns() < deadline {
        let n = pv_guest::console::read_input(&mut buf);
        for &b in &buf[..n] {
            // A terminal's Enter is CR (a serial line's LF): either ends a line.
            if b == b'\n' || b == b'\r' {
                if cur.is_empty() {
                    continue;
                }
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
