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
    use hypercall_abi::DomId;
    use hypercall_abi::event_channel::VIRQ_DOM_EXC;
    use hypercall_abi::guest;
    use hypercall_abi::sched::SHUTDOWN_POWEROFF;
    use hypercall_abi::start_info::StartInfo;
    use pv_guest::{events, println, selftest, time};

    static DOM_EXC: AtomicU64 = AtomicU64::new(0);

    fn param(line: &str, key: &str, default: u64) -> u64 {
        pv_guest::cmdline_value(line, key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn main(si: &'static StartInfo) -> ! {
        let line = pv_guest::cmdline(si);
        println!("dom0: xen-core dom0 starting");
        pv_guest::info::print_start_info("dom0", si);
        if let Some(tests) = pv_guest::cmdline_value(line, "test") {
            selftest::run(tests);
        }
        let rounds = param(line, "frames", 0);
        if rounds > 0 {
            frame_accounting(rounds);
        }
        if let Ok(port) = guest::evtchn_bind_virq(VIRQ_DOM_EXC, 0) {
            events::on(port, |_| {
                DOM_EXC.fetch_add(1, Ordering::SeqCst);
            });
            let _ = events::unmask(port);
        }

        let domus = || ctl::domains().into_iter().filter(|d| d.domain != DomId(0)).count();
        if domus() > 0 {
            println!("dom0: {} domU(s) running", domus());
            let share_s = param(line, "cpushare", 0);
            if share_s > 0 {
                cpu_share(share_s);
            }
            let limit = time::now_ns() + param(line, "domu_timeout_s", 120) * 1_000_000_000;
            // wait_for=<domid>: when that domain is gone, the rest (CPU hogs) are destroyed.
            if let Some(id) =
                pv_guest::cmdline_value(line, "wait_for").and_then(|v| v.parse::<u16>().ok())
            {
                let alive = || ctl::domains().iter().any(|d| d.domain == DomId(id));
                while alive() && time::now_ns() < limit {
                    let _ = guest::set_timer_op(time::now_ns() + 200_000_000);
                    events::wait();
                }
                for d in ctl::domains().iter().filter(|d| d.domain != DomId(0)) {
                    let _ = ctl::destroy(d.domain);
                }
            }
            while domus() > 0 && time::now_ns() < limit {
                let _ = guest::set_timer_op(time::now_ns() + 500_000_000);
                events::wait();
            }
            match domus() {
                0 => println!("dom0: all domUs are gone"),
                n => println!(
                    "dom0: {n} domU(s) still running after the timeout; powering off anyway"
                ),
            }
        }
        println!("dom0: powering off");
        pv_guest::shutdown(SHUTDOWN_POWEROFF)
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
            let mut op = hypercall_abi::event_channel::EvtchnAllocUnbound {
                dom: d,
                remote_dom: DomId(0),
                port: hypercall_abi::EvtchnPort(0),
            };
            #[allow(unsafe_code)]
            // SAFETY: the op matches EVTCHNOP_alloc_unbound.
            let ev = unsafe {
                guest::event_channel_op(
                    hypercall_abi::event_channel::EVTCHNOP_ALLOC_UNBOUND,
                    &mut op,
                )
            }
            .is_ok();
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
