//! dom0: the privileged domain's kernel. It reports what the hypervisor told it, runs the
//! self-tests its command line names (`test=...`), and shuts the machine down.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod kernel {
    use hypercall_abi::sched::SHUTDOWN_POWEROFF;
    use hypercall_abi::start_info::StartInfo;
    use pv_guest::{println, selftest};

    fn main(si: &'static StartInfo) -> ! {
        let line = pv_guest::cmdline(si);
        println!("dom0: xen-core dom0 starting");
        pv_guest::info::print_start_info("dom0", si);
        if let Some(tests) = pv_guest::cmdline_value(line, "test") {
            selftest::run(tests);
        }
        println!("dom0: powering off");
        pv_guest::shutdown(SHUTDOWN_POWEROFF)
    }

    pv_guest::kernel_main!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0 is a PV kernel image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
