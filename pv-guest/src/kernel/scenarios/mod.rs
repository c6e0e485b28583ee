//! Multi-domain scenarios a `pv-guest` domU runs when its command line says
//! `scenario=<name>` (with `key=value` parameters), for the system tests of scheduling, time,
//! event channels, grants, XenStore and dom0's console back ends. Each prints `RESULT <name>:
//! ...` lines (attacks: `ATTACK` lines) the tests parse. One file per subject: `pingpong`
//! (events through a granted page), `timing` (hog, latency, timers, yieldpair), `xenstore`,
//! `grants`, `console` (vcons, flood, ticker, corrupt-console, storm, echo), `hostile` (the
//! attacks on isolation, and the victim that watches its memory), `isolation` (the three holes
//! of issue 11), `limits` (every per-domain limit), `drvbench` (split-driver benchmarks), `blk`
//! (the block frontend against dom0's blkback, and hostile frontends) and `tcp` (TCP echo
//! server and client over the vif, and hostile netfronts).

mod blk;
mod console;
mod drvbench;
mod grants;
mod hostile;
mod isolation;
mod limits;
mod pingpong;
mod tcp;
mod timing;
mod xenstore;

use pv_guest::println;

/// Runs the scenario named on the command line, if any.
pub fn run(line: &str) {
    match pv_guest::cmdline_value(line, "scenario") {
        Some("pingpong") => pingpong::pingpong(line),
        Some("hog") => timing::hog(),
        Some("latency") => timing::latency(line),
        Some("timers") => timing::timers(),
        Some("yieldpair") => timing::yieldpair(line),
        Some("hostile") => hostile::run(),
        Some("stale-tlb") => isolation::stale_tlb(line),
        Some("multicall-hog") => isolation::multicall_hog(line),
        Some("grant-self-map") => isolation::grant_self_map(line),
        Some("limits") => limits::run(line),
        Some("fuzz") => crate::kernel::selftest::fuzz::run(line),
        Some("xenstore") => xenstore::xenstore_test(line),
        Some("grants") => grants::grants(line),
        Some("vcons") => console::vcons(line),
        Some("flood") => console::flood(line),
        Some("ticker") => console::ticker(line),
        Some("corrupt-console") => console::corrupt_console(),
        Some("storm") => console::storm(line),
        Some("echo") => console::echo(line),
        Some("blk") => blk::run(line),
        Some("blkhostile") => blk::hostile(line),
        Some("drvbench") => drvbench::run(line),
        Some("tcp-echo") => tcp::echo(line),
        Some("tcp-client") => tcp::client(line),
        Some("net-hostile") => tcp::hostile(line),
        Some("victim") => hostile::victim(pv_guest::cmdline_param(line, "seconds", 5)),
        Some(other) => println!("RESULT {other}: FAIL unknown scenario"),
        None => {}
    }
}
