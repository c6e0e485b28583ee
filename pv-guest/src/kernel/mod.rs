//! The test kernel proper: what it does once the runtime has booted it. It reports what it
//! learned from start_info, runs the self-tests its command line names (`test=...`, in
//! `selftest/`), then the scenario it names (`scenario=...`, in `scenarios/`: multi-domain
//! exchanges, attacks on isolation, driver benchmarks), and shuts down.

pub mod scenarios;
pub mod selftest;

use hypercall_abi::sched::SHUTDOWN_POWEROFF;
use hypercall_abi::start_info::StartInfo;
use pv_guest::println;

fn main(si: &'static StartInfo) -> ! {
    let line = pv_guest::cmdline(si);
    println!("pv-guest: hello from a PV guest");
    let up = pv_guest::time::now_ns();
    println!("pv-guest: up at system time {}.{:06} s", up / 1_000_000_000, up / 1000 % 1_000_000);
    pv_guest::print_start_info("pv-guest", si);
    if let Some(tests) = pv_guest::cmdline_value(line, "test") {
        selftest::run(tests);
    }
    scenarios::run(line);
    println!("pv-guest: shutting down");
    pv_guest::shutdown(SHUTDOWN_POWEROFF)
}

pv_guest::kernel_main!(main);
