//! Commands dom0's command line can give the toolstack, printing lines the system tests
//! parse: `create=<cfg>[+<cfg>...]` builds domains from configurations in dom0's ramdisk (each
//! failure one line, and a `RESULT create` line saying whether any failure kept a frame);
//! `cycles=<cfg>:<n>` creates and destroys a domain `n` times and checks every frame comes
//! back; `frames=<rounds>` does so for empty domains built by hand; `cpushare=<seconds>`
//! measures how the CPU is shared among the running domUs; `createbench=<cfg>:<n>` creates `n`
//! domains of one configuration, all kept running, timing each from `create` to its first
//! console line and noting dom0's heap as they accumulate.

use hypercall_abi::{DomId, guest};
use pv_guest::{println, time};

use super::{Toolstack, ctl};
use crate::service::Services;

fn free_frames() -> u64 {
    ctl::physinfo().map(|p| p.free_pages).unwrap_or(0)
}

/// Creates a domain from each configuration file of `list` (`+`-separated) in order.
pub fn create_all(ts: &mut Toolstack, svc: &mut Services, list: &str) {
    let (mut created, mut failed, mut leaked) = (0, 0, 0i64);
    for file in list.split('+').filter(|f| !f.is_empty()) {
        let before = free_frames();
        match ts.create_file(svc, file) {
            Ok(_) => created += 1,
            Err(e) => {
                failed += 1;
                println!("dom0: create {file}: {e}");
                leaked += before as i64 - free_frames() as i64;
            }
        }
    }
    println!(
        "RESULT create: {created} created, {failed} failed, {leaked} frames kept by the failures"
    );
}

/// Creates a domain from `cfg` and destroys it, `rounds` times, and reports the machine's
/// free frames before and after.
pub fn cycles(ts: &mut Toolstack, svc: &mut Services, arg: &str) {
    let Some((file, rounds)) =
        arg.rsplit_once(':').and_then(|(f, n)| Some((f, n.parse::<u64>().ok()?)))
    else {
        println!("RESULT cycles: FAIL bad argument {arg:?} (want <cfg>:<rounds>)");
        return;
    };
    let start = free_frames();
    let mut lowest = start;
    let t0 = time::now_ns();
    for i in 0..rounds {
        let d = match ts.create_file(svc, file) {
            Ok(d) => d,
            Err(e) => {
                println!("RESULT cycles: FAIL round {i}: {e}");
                return;
            }
        };
        lowest = lowest.min(free_frames());
        if let Err(e) = ts.destroy(svc, d) {
            println!("RESULT cycles: FAIL round {i}: destroy: {e}");
            return;
        }
    }
    let end = free_frames();
    println!(
        "RESULT cycles: {rounds} domains of {file} created and destroyed in {} ms; free frames {start} -> {end} (lowest {lowest}), {} leaked",
        (time::now_ns() - t0) / 1_000_000,
        start as i64 - end as i64
    );
}

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
    let free = free_frames;
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
        ctl::wait_gone(d);
    }
    let end = free();
    println!(
        "RESULT frames: {rounds} domains created and destroyed; free frames {start} -> {end} (lowest {lowest}), {} leaked",
        start as i64 - end as i64
    );
}

/// Creates `n` domains of `cfg` (named `<name>1`, `<name>2`, ...), all left running, then
/// destroys them, twice: for each, the time from the call to `create` to its first console
/// line reaching dom0, the time `create` itself took, and dom0's heap in use afterwards. The
/// first pass runs on machine memory QEMU has never touched (the host faults each page in on
/// first use, a cost of the emulator, not of a machine), the second on frames freed by the
/// first. After each pass the machine's free memory is reported: the second must end where
/// the first did.
pub fn create_bench(ts: &mut Toolstack, svc: &mut Services, arg: &str) {
    let Some((file, n)) = arg.rsplit_once(':').and_then(|(f, n)| Some((f, n.parse::<u32>().ok()?)))
    else {
        println!("RESULT createbench: FAIL bad argument {arg:?} (want <cfg>:<count>)");
        return;
    };
    let base = match ts.config(svc, file) {
        Ok(c) => c,
        Err(e) => {
            println!("RESULT createbench: FAIL {e}");
            return;
        }
    };
    let start_free = free_frames();
    let mut ends = alloc::vec::Vec::new();
    for pass in ["cold", "warm", "scrubbed"] {
        if pass == "scrubbed" {
            wait_for_scrubbing();
        }
        let (heap0, _) = pv_guest::memory::heap::stats();
        let mut made = alloc::vec::Vec::new();
        for i in 1..=n {
            let mut cfg = base.clone();
            cfg.name = alloc::format!("{}{i}", base.name);
            let t0 = time::now_ns();
            let d = match ts.create(svc, cfg) {
                Ok(d) => d,
                Err(e) => {
                    println!("RESULT createbench: FAIL {pass} guest {i}: {e}");
                    break;
                }
            };
            let t_built = time::now_ns();
            made.push(d);
            // Serve until its first line is in: the time a user waits to see the guest speak.
            while svc.consoles().lines_from(d.0) == 0 && time::now_ns() < t0 + 10_000_000_000 {
                svc.round();
                if svc.consoles().lines_from(d.0) == 0 {
                    let _ = guest::set_timer_op(time::now_ns() + 1_000_000);
                    pv_guest::events::wait();
                }
            }
            let t_line = time::now_ns();
            let (heap, _) = pv_guest::memory::heap::stats();
            println!(
                "RESULT createbench: {pass} guest {i} of {n}: create {} us, first line {} us, dom0 heap {} KiB (+{} KiB)",
                (t_built - t0) / 1000,
                (t_line - t0) / 1000,
                heap / 1024,
                heap.saturating_sub(heap0) / 1024
            );
        }
        for d in made {
            let _ = ts.destroy(svc, d);
        }
        ends.push(free_frames());
    }
    println!(
        "RESULT createbench: done; free frames {start_free} -> {} after the cold pass -> {} after the warm pass -> {} after the scrubbed pass",
        ends[0], ends[1], ends[2]
    );
}

/// Leaves the CPU idle (dom0 sleeping, no guest running) until the hypervisor has zeroed
/// every free frame (`physinfo.scrub_pages` at 0), at most 60 s, and says how long it took:
/// the next `create` then finds its memory scrubbed, as after a machine sat idle.
fn wait_for_scrubbing() {
    let dirty = || ctl::physinfo().map(|p| p.scrub_pages).unwrap_or(0);
    let (t0, before) = (time::now_ns(), dirty());
    let mut left = before;
    while left > 0 && time::now_ns() < t0 + 60_000_000_000 {
        time::sleep_ns(50_000_000);
        left = dirty();
    }
    println!(
        "RESULT createbench: idle for {} ms: frames waiting to be scrubbed {before} -> {left}",
        (time::now_ns() - t0) / 1_000_000
    );
}
