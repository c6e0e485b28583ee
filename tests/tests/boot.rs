//! Boot and guest-execution system tests (issue: boot the hypervisor and run dom0 as a
//! deprivileged PV guest on Xen's ABI).

use tests::*;

#[test]
fn boots_dom0_to_poweroff() {
    let run = Boot::new("boot-dom0", "dom0", "").run();
    run.expect("xen-core");
    run.expect("memory map:");
    run.expect("module 0:");
    run.expect("dom0: nr_pages");
    run.expect("PRIVILEGED INITDOMAIN");
    run.expect("dom0 is gone: ending the machine (poweroff)");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn dom0_gets_its_command_line_and_ramdisk() {
    let ramdisk = std::env::temp_dir().join(format!("xen-core-ramdisk-{}", std::process::id()));
    std::fs::write(&ramdisk, vec![0x5a; 10_000]).unwrap();
    let run = Boot::new("boot-ramdisk", "dom0", "hello=world").module(ramdisk.clone(), "").run();
    let _ = std::fs::remove_file(&ramdisk);
    run.expect("cmdline 'hello=world'");
    run.expect("(10000 bytes)");
    run.expect_status(EXIT_POWEROFF);
}

// The self-tests that need no domU run in the pv-guest kernel booted as dom0: dom0's own image
// carries only the self-tests it must run while it serves domUs (see dom0/src/kernel/selftest.rs).

#[test]
fn hypercall_and_trap_selftests_pass() {
    let tests = ["enosys", "efault", "exceptions", "privileged", "fpu"];
    let run = Boot::new("selftests", "pv-guest", &format!("test={}", tests.join("+"))).run();
    run.expect_tests_pass(&tests);
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn selftests_pass_without_smap_and_smep() {
    let tests = ["efault", "exceptions", "fpu"];
    let run = Boot::new("selftests-nosmap", "pv-guest", &format!("test={}", tests.join("+")))
        .hv_args("loglvl=all smap=0 smep=0")
        .run();
    run.expect("SMEP false, SMAP false");
    run.expect_tests_pass(&tests);
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn dom0_fault_without_handler_crashes_it_alone() {
    let run = Boot::new("fault-nohandler", "pv-guest", "test=fault-nohandler").run();
    run.expect("exception 6 (#UD) with no handler");
    run.expect("domain 0 (Domain-0) crashed");
    run.expect_not("TEST fault-nohandler: FAIL");
    run.expect_not("FATAL");
    run.expect_status(EXIT_CRASH);
}

#[test]
fn pv_guest_image_boots_as_dom0() {
    let run = Boot::new("pv-guest-as-dom0", "pv-guest", "test=enosys").run();
    run.expect("pv-guest: hello from a PV guest");
    run.expect("PRIVILEGED INITDOMAIN");
    run.expect_tests_pass(&["enosys"]);
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn malformed_dom0_image_is_refused_clearly() {
    let dir = std::env::temp_dir();
    let text = dir.join(format!("xen-core-not-elf-{}", std::process::id()));
    std::fs::write(&text, b"this is not a kernel\n".repeat(100)).unwrap();
    let run = Boot::new("bad-image", "dom0", "").run_with_dom0(&text);
    run.expect("cannot build dom0: Domain-0: bad kernel image: not an ELF image");
    run.expect_status(EXIT_HV_FAILURE);

    // A real kernel cut short: its segments run past the end of the file.
    let dom0 = std::fs::read(image("dom0")).unwrap();
    let cut = dir.join(format!("xen-core-truncated-{}", std::process::id()));
    std::fs::write(&cut, &dom0[..dom0.len().min(6000)]).unwrap();
    let run = Boot::new("truncated-image", "dom0", "").run_with_dom0(&cut);
    run.expect("cannot build dom0: Domain-0: bad kernel image:");
    run.expect_status(EXIT_HV_FAILURE);
    let _ = std::fs::remove_file(&text);
    let _ = std::fs::remove_file(&cut);
}

#[test]
fn no_dom0_module_is_a_clear_error() {
    let mut boot = Boot::new("no-module", "dom0", "");
    boot.modules.clear();
    let run = boot.run();
    run.expect("cannot build dom0: no dom0 kernel");
    run.expect_status(EXIT_HV_FAILURE);
}

/// A big dom0 builds: the builder's P2M table (8 bytes per page, 1.5 MiB here) does not come
/// out of the hypervisor's 1 MiB heap. (It did, and dom0_mem=256M on 1 GiB ended in a
/// hypervisor panic.)
#[test]
fn a_large_dom0_builds_without_exhausting_the_hypervisor_heap() {
    let mut b = Boot::new("boot-dom0-768M", "dom0", "").hv_args("loglvl=info dom0_mem=768M");
    b.memory_mib = 1024;
    let run = b.run();
    run.expect("dom0: nr_pages 196608 (768 MiB)");
    run.expect_not("hypervisor panic");
    run.expect_status(EXIT_POWEROFF);
}

/// A large domU is built and destroyed without any copy of its page list on the heap
/// (destruction used to collect every frame number into a heap vector: 1.25 MiB here).
#[test]
fn a_large_domu_is_built_and_destroyed_and_every_frame_comes_back() {
    let mut b = Boot::new("boot-domu-640M", "dom0", "")
        .hv_args("loglvl=info domu=big:1:640M")
        .module(image("pv-guest"), "");
    b.memory_mib = 1024;
    let run = b.run();
    run.expect("[big] pv-guest: nr_pages 163840 (640 MiB)");
    run.expect("domain 1 (big) destroyed:");
    run.expect("domain 1: all frames returned");
    run.expect_not("hypervisor panic");
    run.expect_status(EXIT_POWEROFF);
}
