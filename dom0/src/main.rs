//! dom0: the privileged domain's kernel. It reports what the hypervisor told it, runs the
//! self-tests its command line names (`test=...`), looks after the domUs the hypervisor started
//! at boot until they are all gone, and powers the machine off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use dom0::ctl;
    use dom0::services::{Config, Services};
    use hypercall_abi::DomId;
    use hypercall_abi::event_channel::VIRQ_DOM_EXC;
    use hypercall_abi::guest;
    use hypercall_abi::sched::SHUTDOWN_POWEROFF;
    use hypercall_abi::start_info::StartInfo;
    use pv_guest::{events, println, selftest, time};

    static DOM_EXC: AtomicU64 = AtomicU64::new(0);

    fn main(si: &'static StartInfo) -> ! {
        let line = pv_guest::cmdline(si);
        println!("dom0: xen-core dom0 starting");
        pv_guest::info::print_start_info("dom0", si);
        if let Some(tests) = pv_guest::cmdline_value(line, "test") {
            // dom0's own (its xenstored is in-process), then the runtime's.
            let (own, rest): (alloc::vec::Vec<&str>, alloc::vec::Vec<&str>) =
                tests.split('+').partition(|t| *t == "xsbench");
            if !own.is_empty() {
                xenstore_bench();
            }
            selftest::run(&rest.join("+"));
        }
        let rounds = pv_guest::cmdline_param(line, "frames", 0u64);
        if rounds > 0 {
            frame_accounting(rounds);
        }
        if let Ok(port) =
            guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(VIRQ_DOM_EXC), 0)
        {
            events::on(port, |_| {
                DOM_EXC.fetch_add(1, Ordering::SeqCst);
            });
            let _ = events::unmask(port);
        }
        serve(line, pv_guest::cmdline_param(line, "cpushare", 0u64));
        println!("dom0: powering off");
        pv_guest::shutdown(SHUTDOWN_POWEROFF)
    }

    /// A XenStore read in dom0's own xenstored, with no ring or domain switch: the floor
    /// under a domU's read over its ring (`scenario=drvbench`).
    fn xenstore_bench() {
        use pv_guest::xenstore::Store;
        let mut svc = Services::new(Config::default());
        let mut st = svc.store();
        if let Err(e) = st.write(0, "/local/domain/0/bench", b"value") {
            println!("TEST xsbench: FAIL write: {e:?}");
            return;
        }
        let mut bad = 0u32;
        let c = selftest::measure(11, 200, || {
            bad += u32::from(st.read(0, "/local/domain/0/bench").is_err());
        });
        selftest::bench_line("xenstore-read-dom0-local", c);
        if bad > 0 {
            println!("TEST xsbench: FAIL {bad} reads failed");
        }
    }

    /// The domUs alive now (not dying).
    fn live_domus() -> alloc::vec::Vec<hypercall_abi::domctl::GetDomainInfo> {
        ctl::domains()
            .into_iter()
            .filter(|d| {
                d.domain != DomId(0) && d.flags & hypercall_abi::domctl::XEN_DOMINF_DYING == 0
            })
            .collect()
    }

    /// Serves the domUs (XenStore, consoles) until they are all gone. `wait_for=<domid>`:
    /// once that one is gone, the others (CPU hogs) are destroyed. `serve=1`: never stop.
    fn serve(line: &str, cpushare_s: u64) {
        let cfg = Config {
            vcons: pv_guest::cmdline_param(line, "vcons", 0u64) != 0,
            vcons_restart_after: pv_guest::cmdline_param(line, "vcons_restart_after", 0u64),
            serve: pv_guest::cmdline_param(line, "serve", 0u64) != 0,
        };
        let serve_forever = cfg.serve;
        let wait_for =
            pv_guest::cmdline_value(line, "wait_for").and_then(|v| v.parse::<u16>().ok());
        let limit = time::now_ns()
            + pv_guest::cmdline_param(line, "domu_timeout_s", 120u64) * 1_000_000_000;
        let mut svc = Services::new(cfg);
        let mut seen_exc = u64::MAX;
        let mut measured = cpushare_s == 0;
        loop {
            let exc = DOM_EXC.load(Ordering::SeqCst);
            if exc != seen_exc {
                seen_exc = exc;
                let live = live_domus();
                for d in &live {
                    if !svc.serves(d.domain) {
                        let name = domain_name(d);
                        svc.adopt(d.domain, &name);
                        // Everything it needs is connected: let it run.
                        let _ = ctl::unpause(d.domain);
                    }
                }
                let gone: alloc::vec::Vec<u16> = svc
                    .guest_ids()
                    .into_iter()
                    .filter(|id| !live.iter().any(|d| d.domain.0 == *id))
                    .collect();
                for id in gone {
                    svc.forget(DomId(id));
                }
                if let Some(id) = wait_for
                    && !live.iter().any(|d| d.domain.0 == id)
                {
                    for d in &live {
                        let _ = ctl::destroy(d.domain);
                    }
                }
                if live.is_empty() && !serve_forever {
                    println!("dom0: all domUs are gone");
                    return;
                }
            }
            svc.round();
            if !measured {
                measured = true;
                cpu_share(cpushare_s);
            }
            if time::now_ns() > limit && !serve_forever {
                println!(
                    "dom0: {} domU(s) still running after the timeout; powering off anyway",
                    live_domus().len()
                );
                return;
            }
            // Wake for events, and every 20 ms for serial input.
            let _ = guest::set_timer_op(time::now_ns() + 20_000_000);
            events::wait();
        }
    }

    /// A domain's name, which the hypervisor passes in getdomaininfo's handle (`d<id>` if none).
    fn domain_name(d: &hypercall_abi::domctl::GetDomainInfo) -> alloc::string::String {
        let end = d.handle.iter().position(|&b| b == 0).unwrap_or(d.handle.len());
        match core::str::from_utf8(&d.handle[..end]) {
            Ok(n) if !n.is_empty() => n.into(),
            _ => alloc::format!("d{}", d.domain.0),
        }
    }

    /// Measures how the CPU is shared among the domUs over `secs` seconds, reports it beside
    /// their weights, then destroys them.
    fn cpu_share(secs: u64) {
        time::sleep_ns(500_000_000);
        let before = ctl::domains();
        let t0 = time::now_ns();
        time::sleep_ns(secs * 1_000_000_000);
        let after = ctl::domains();
        let wall = time::now_ns() - t0;
        for a in after.iter().filter(|d| d.domain != DomId(0)) {
            let Some(b) = before.iter().find(|b| b.domain == a.domain) else { continue };
            let used = a.cpu_time - b.cpu_time;
            let (weight, cap) = ctl::sched_get(a.domain).unwrap_or((0, 0));
            println!(
                "RESULT cpushare: d{} weight {weight} cap {cap} cpu {} ms of {} ms ({}%)",
                a.domain.0,
                used / 1_000_000,
                wall / 1_000_000,
                used * 100 / wall.max(1)
            );
        }
        for d in after.iter().filter(|d| d.domain != DomId(0)) {
            let _ = ctl::destroy(d.domain);
        }
    }

    /// Creates and destroys domains `rounds` times, each with memory, a grant table and an
    /// event channel, and checks the machine's free frames come back to where they started.
    fn frame_accounting(rounds: u64) {
        let free = || ctl::physinfo().map(|p| p.free_pages).unwrap_or(0);
        let start = free();
        let mut lowest = start;
        for i in 0..rounds {
            let Ok(d) = ctl::create() else {
                println!("RESULT frames: FAIL create failed in round {i}");
                return;
            };
            let _ = ctl::max_mem(d, 8 << 10);
            let got = ctl::populate(d, 2048).unwrap_or(0);
            let mut frames = [hypercall_abi::Mfn(0); 2];
            let gnt = guest::gnttab_setup_table(d, &mut frames).is_ok();
            let ev = guest::evtchn_alloc_unbound_in(d, DomId(0)).is_ok();
            // Over the ceiling: nothing more.
            let over = ctl::populate(d, 1).unwrap_or(0);
            lowest = lowest.min(free());
            if got != 2048 || !gnt || !ev || over != 0 {
                println!(
                    "RESULT frames: FAIL round {i}: populated {got}, grant table {gnt}, event channel {ev}, over the ceiling {over}"
                );
            }
            let _ = ctl::destroy(d);
            while ctl::domains().iter().any(|x| x.domain == d) {
                time::sleep_ns(1_000_000);
            }
        }
        let end = free();
        println!(
            "RESULT frames: {rounds} domains created and destroyed; free frames {start} -> {end} (lowest {lowest}), {} leaked",
            start as i64 - end as i64
        );
    }

    pv_guest::kernel_main!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0 is a PV kernel image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
