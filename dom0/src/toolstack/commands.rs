//! Commands dom0's command line can give the toolstack, which measure the hypervisor's
//! bookkeeping from the privileged domain and print `RESULT` lines the system tests parse:
//! `frames=<rounds>` creates and destroys domains and checks every frame comes back,
//! `cpushare=<seconds>` measures how the CPU is shared among the running domUs.

use hypercall_abi::{DomId, guest};
use pv_guest::{println, time};

use super::ctl;

/// Measures how the CPU is shared among the domUs over `secs` seconds, reports it beside
/// their weights, then destroys them.
pub fn cpu_share(secs: u64) {
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
pub fn frame_accounting(rounds: u64) {
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
