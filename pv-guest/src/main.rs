//! The `pv-guest` kernel: a small PV guest on the runtime in this crate. It reports what it
//! learned from start_info, runs the self-tests its command line names (`test=...`), and
//! shuts down. It boots as a domU or, like any Xen PV kernel, as dom0.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod kernel {
    use hypercall_abi::sched::SHUTDOWN_POWEROFF;
    use hypercall_abi::start_info::StartInfo;
    use pv_guest::{println, selftest};

    fn main(si: &'static StartInfo) -> ! {
        let line = pv_guest::cmdline(si);
        println!("pv-guest: hello from a PV guest");
        pv_guest::print_start_info("pv-guest", si);
        if let Some(tests) = pv_guest::cmdline_value(line, "test") {
            selftest::run(tests);
        }
        pv_guest::scenarios::run(line);
        println!("pv-guest: shutting down");
        pv_guest::shutdown(SHUTDOWN_POWEROFF)
    }

    pv_guest::kernel_main!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-guest is a PV kernel image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
