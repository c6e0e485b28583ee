//! Where the ABI says so, xen-core behaves as Xen 4.17: each test runs the same pv-guest
//! self-tests on xen-core and, through `shared/tools/xen-reference`, on real Xen (both as dom0,
//! the only way the tool boots a kernel), and both must pass. These are the points an
//! unmodified Linux relies on (see ../shared/LINUX-PV-NOTES.md).

use tests::*;

/// Runs `tests` in the pv-guest kernel as dom0 on xen-core, then on Xen 4.17 if the tool is
/// there (it is on the machines CI runs on; elsewhere the Xen half is skipped with a note).
fn on_both(name: &str, tests: &[&str]) {
    let list = tests.join("+");
    let run = Boot::new(name, "pv-guest", &format!("test={list}")).run();
    run.expect_tests_pass(tests);
    run.expect_status(EXIT_POWEROFF);

    let image = image("pv-guest");
    let image = image.to_str().expect("a UTF-8 path");
    let arg = format!("test={list}");
    let args = ["--timeout", "240", "--until", "pv-guest: shutting down", image, &arg];
    let Some(out) = xen_reference(&args) else {
        assert!(
            std::env::var_os("REQUIRE_XEN_REFERENCE").is_none(),
            "REQUIRE_XEN_REFERENCE is set but the xen-reference tool is missing"
        );
        return;
    };
    let _ = std::fs::create_dir_all(root().join("target/test-logs"));
    let _ = std::fs::write(root().join(format!("target/test-logs/{name}-xen.log")), &out);
    for t in tests {
        assert!(out.contains(&format!("TEST {t}: PASS")), "on Xen 4.17, {t} did not pass:\n{out}");
    }
    // What the tests print for comparison (`INFO` lines) must read the same on both.
    let info = |text: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.split("INFO ").nth(1)).map(str::to_string).collect()
    };
    assert_eq!(info(&run.text()), info(&out), "xen-core and Xen 4.17 differ");
}

/// The runstate area Linux cannot boot without, the time area its vDSO reads, and the
/// periodic timer (ticking while the vCPU runs).
#[test]
fn vcpu_runstate_time_area_and_periodic_timer() {
    on_both("parity-vcpu", &["runstate", "timearea", "periodic"]);
}

/// Setting the wall clock as a Linux dom0 does every 11 minutes (`platform_op`
/// `XENPF_settime64`), and the envelope's errnos.
#[test]
fn platform_op_sets_the_wall_clock() {
    on_both("parity-settime", &["settime"]);
}

/// What the `iret` hypercall leaves in rcx and r11: the frame's, or with `VGCF_in_syscall`
/// those `sysret` leaves (a kernel returning from a system call relies on it).
#[test]
fn iret_registers() {
    on_both("parity-iret", &["iretregs"]);
}

/// How a grant copy names its sides (a grant's owner as DOMID_SELF: accepted; a frame by the
/// caller's real id: `GNTST_permission_denied`), the grant table's size limits, device-only
/// maps and `unmap_and_replace`.
#[test]
fn grant_copy_naming_and_table_size() {
    on_both("parity-grant", &["grantcopy", "grantmaps"]);
}

/// What a kernel is told it has (XENFEAT bits) and the #GP a software interrupt without a
/// handler raises, read the same on both.
#[test]
fn features_and_software_interrupts() {
    on_both("parity-features", &["features", "softint"]);
}
