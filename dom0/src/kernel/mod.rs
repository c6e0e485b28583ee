//! The dom0 kernel binary: what dom0 does once the runtime has booted it. It reports what the
//! hypervisor told it, runs the self-tests its command line names (`test=...`, `selftest`),
//! builds the domUs the hypervisor's command line names (`domu=`) and those its own names
//! (`create=<cfg>[+<cfg>...]`, configurations in its ramdisk), runs the toolstack commands it
//! names (`cycles=`, `frames=`, `cpushare=`, `createbench=`), with `shell=1` gives the serial
//! line to the `xl`-style shell (`quiet=1`: guests' lines held until attached), brings up the
//! devices it drives (with their self-tests and benchmarks: `devtest=1`, `devbench=1`,
//! `netbench=<a.b.c.d:port>`), serves the domUs until they are all gone, and powers the machine
//! off. The serving loop only dispatches: to the toolstack when domains shut down, come or go,
//! to the services for a round of work, then it sleeps until an event or the next look at the
//! serial line.

mod selftest;

use dom0::drivers::iobuf::GrantPath;
use dom0::service::{Config, Services};
use dom0::toolstack::{Toolstack, commands, domains};
use hypercall_abi::guest;
use hypercall_abi::sched::SHUTDOWN_POWEROFF;
use hypercall_abi::start_info::StartInfo;
use pv_guest::{cmdline_param, cmdline_value, events, println, time};

fn main(si: &'static StartInfo) -> ! {
    let line = pv_guest::cmdline(si);
    println!("dom0: xen-core dom0 starting");
    pv_guest::print_start_info("dom0", si);
    if let Some(tests) = cmdline_value(line, "test") {
        selftest::run(tests);
    }
    let rounds = cmdline_param(line, "frames", 0u64);
    if rounds > 0 {
        commands::frame_accounting(rounds);
    }
    let mut devices = dom0::drivers::Devices::probe();
    if cmdline_param(line, "devtest", 0u64) != 0 {
        dom0::drivers::devtest::selftest(&mut devices.virtio);
    }
    if cmdline_param(line, "devbench", 0u64) != 0 {
        dom0::drivers::devtest::bench(&mut devices.virtio);
    }
    if let Some(server) = cmdline_value(line, "netbench") {
        let bytes = cmdline_param(line, "netbench_bytes", 1usize << 20);
        dom0::drivers::netbench::run(&mut devices.virtio, server, bytes);
    }
    domains::watch();
    let cfg = Config {
        vcons: cmdline_param(line, "vcons", 0u64) != 0,
        vcons_restart_after: cmdline_param(line, "vcons_restart_after", 0u64),
        serve: cmdline_param(line, "serve", 0u64) != 0,
        shell: cmdline_param(line, "shell", 0u64) != 0,
        quiet: cmdline_param(line, "quiet", 0u64) != 0,
        blk_grants: match cmdline_value(line, "blkback_grants") {
            Some("map") => GrantPath::Map,
            _ => GrantPath::Copy,
        },
    };
    let shell = cfg.shell;
    let mut svc = Services::new(cfg);
    svc.attach_devices(devices);
    let wait_for = cmdline_value(line, "wait_for").and_then(|v| v.parse::<u16>().ok());
    let mut ts = Toolstack::new(wait_for);
    ts.create_boot_domus(&mut svc);
    // Self-tests to run while the boot domUs run beside them (the hypercall fuzzer: dom0's
    // calls must not disturb them); their consoles wait meanwhile.
    if let Some(tests) = cmdline_value(line, "test_after_domus") {
        selftest::run(tests);
    }
    if let Some(list) = cmdline_value(line, "create") {
        commands::create_all(&mut ts, &mut svc, list);
    }
    if let Some(arg) = cmdline_value(line, "cycles") {
        commands::cycles(&mut ts, &mut svc, arg);
    }
    if let Some(arg) = cmdline_value(line, "createbench") {
        commands::create_bench(&mut ts, &mut svc, arg);
    }
    if shell {
        run_shell(&mut ts, &mut svc);
    } else {
        serve(line, &mut ts, &mut svc, cmdline_param(line, "cpushare", 0u64));
    }
    println!("dom0: powering off");
    pv_guest::shutdown(SHUTDOWN_POWEROFF)
}

/// Serves the domUs (XenStore, consoles) until they are all gone. `wait_for=<domid>`: once
/// that one is gone, the others (CPU hogs) are destroyed. `serve=1`: never stop.
/// `cpushare=<s>`: measure the CPU shares once the domUs run.
fn serve(line: &str, ts: &mut Toolstack, svc: &mut Services, cpushare_s: u64) {
    let serve_forever = cmdline_param(line, "serve", 0u64) != 0;
    let limit = time::now_ns() + cmdline_param(line, "domu_timeout_s", 120u64) * 1_000_000_000;
    let mut measured = cpushare_s == 0;
    loop {
        if ts.update(svc) == Some(0) && !serve_forever {
            println!("dom0: all domUs are gone");
            return;
        }
        let busy = svc.round();
        if !measured {
            measured = true;
            commands::cpu_share(cpushare_s);
        }
        if time::now_ns() > limit && !serve_forever {
            println!(
                "dom0: {} domU(s) still running after the timeout; powering off anyway",
                domains::live_domus().len()
            );
            return;
        }
        if busy {
            // A back end stopped at its budget with work left: another round at once (after
            // the toolstack's look), without waiting for an event.
            continue;
        }
        // Wake for events, and every 20 ms for serial input.
        let _ = guest::set_timer_op(time::now_ns() + 20_000_000);
        events::wait();
    }
}

/// Serves the domUs with the shell on the serial line, until `poweroff` is typed.
fn run_shell(ts: &mut Toolstack, svc: &mut Services) {
    let mut shell = dom0::shell::Shell::new();
    shell.start();
    while !shell.is_done {
        ts.update(svc);
        svc.round();
        shell.poll(ts, svc);
        // Wake for events, and every 20 ms for serial input.
        let _ = guest::set_timer_op(time::now_ns() + 20_000_000);
        events::wait();
    }
}

pv_guest::kernel_main!(main);
