//! Grant tables, XenStore and xenbus, and the PV console: two domUs printing through their
//! consoles, XenStore permissions, watches and transactions from a domU, grant maps and copies
//! with every refusal, xenbus reconnection after a back-end restart, and misbehaving guests
//! (a console flood, corrupt ring indices, an event storm) confined while the others carry on.

use tests::*;

fn boot(name: &str, hv: &str, dom0: &str, domus: &[&str]) -> Boot {
    Boot::new(name, "dom0", dom0).hv_args(hv).domus(domus)
}

#[test]
fn two_domus_print_through_their_pv_consoles() {
    let _m = shared();
    let run = boot("consoles", "loglvl=info domu=alpha:1:16M domu=beta:2:16M", "", &["", ""]).run();
    for name in ["alpha", "beta"] {
        run.expect(&format!("[{name}] pv-guest: hello from a PV guest"));
        run.expect(&format!("[{name}] pv-guest: shutting down"));
        run.expect(&format!(
            "dom0: d{} ({name}) adopted: xenstore connected, console connected",
            if name == "alpha" { 1 } else { 2 }
        ));
    }
    // Through the ring, not the emergency console (whose lines the hypervisor prefixes (dN)).
    run.expect_not("(d1) pv-guest: hello");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn xenstore_from_a_domu_permissions_watch_transaction_quota() {
    let _m = shared();
    let run = boot(
        "xenstore",
        "loglvl=info domu=other:1:16M domu=xs:2:16M",
        "",
        &["", "scenario=xenstore peer=1"],
    )
    .run();
    run.expect("[xs] xenstore: my name is xs");
    run.expect("[xs] RESULT xenstore-perms: PASS reading d1's name: EACCES");
    run.expect("[xs] RESULT xenstore-watch: PASS");
    run.expect("[xs] RESULT xenstore-transaction: PASS conflict gave EAGAIN");
    run.expect("ENOSPC");
    run.expect("[xs] RESULT xenstore: PASS");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn grant_map_unmap_copy_and_every_refusal() {
    let _m = shared();
    let run = boot(
        "grants",
        "loglvl=info domu=granter:1:16M domu=grantee:2:16M",
        "",
        &["scenario=grants role=granter peer=2", "scenario=grants role=grantee peer=1"],
    )
    .run();
    run.expect("[grantee] RESULT grants: PASS");
    run.expect("[granter] RESULT grants-granter: saw write 0xbeef, access ended true");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn xenbus_frontend_reconnects_after_a_backend_restart() {
    let _m = shared();
    let run = boot(
        "vcons",
        "loglvl=info domu=vc:1:16M",
        "vcons=1 vcons_restart_after=5",
        &["scenario=vcons lines=12"],
    )
    .run();
    run.expect("dom0: restarting the console back end of vc/1");
    for i in 0..12 {
        run.expect(&format!("[vc/1] vcons line {i}"));
    }
    run.expect("[vc] RESULT vcons: PASS 12 lines, 1 reconnects");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn a_flooding_guest_does_not_stall_another_guests_console() {
    let _m = exclusive();
    let run = boot(
        "flood",
        "loglvl=info domu=flood:1:16M domu=tick:2:16M",
        "",
        &["scenario=flood seconds=3", "scenario=ticker count=30 period_ms=50"],
    )
    .run();
    // All 30 ticks arrive, and in about the time they take (1.5 s), not after the flood (3 s).
    run.expect("[tick] tick 29");
    let first = run.time_of("[tick] tick 0").unwrap();
    let last = run.time_of("[tick] tick 29").unwrap();
    println!("ticks took {:.2} s next to the flood", last - first);
    assert!(last - first < 2.8, "ticks were stalled by the flood: {:.2} s", last - first);
    run.expect("[flood] RESULT flood:");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn a_guest_with_corrupt_console_indices_is_disconnected_and_others_carry_on() {
    let _m = shared();
    let run = boot(
        "corrupt",
        "loglvl=info domu=bad:1:16M domu=tick:2:16M",
        "",
        &["scenario=corrupt-console", "scenario=ticker count=20 period_ms=20"],
    )
    .run();
    let lines = run.matching("console disconnected");
    assert_eq!(lines.len(), 1, "one log line: {lines:?}");
    assert!(
        lines[0].contains("d1 (bad)") && lines[0].contains("ring indices out of range"),
        "{lines:?}"
    );
    run.expect("(d1) corrupt: still running after breaking my console");
    run.expect("[tick] tick 19");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn an_event_storm_gets_the_device_disconnected() {
    let _m = exclusive();
    let run = boot(
        "storm",
        "loglvl=info domu=storm:1:16M domu=tick:2:16M",
        "",
        &["scenario=storm seconds=2", "scenario=ticker count=20 period_ms=20"],
    )
    .run();
    let lines = run.matching("console disconnected");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("d1 (storm)") && lines[0].contains("event storm"), "{lines:?}");
    run.expect("(d1) storm: sent");
    run.expect("[tick] tick 19");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn dom0_routes_serial_input_to_one_guest() {
    let _m = shared();
    let run = boot("input", "loglvl=info domu=echo:1:16M", "", &["scenario=echo lines=1"])
        .type_after("[echo] echo: ready", "route 1\r")
        .type_after("console input now goes to d1", "hello guest\r")
        .run();
    run.expect("dom0: console input now goes to d1");
    run.expect("[echo] echo: got 'hello guest'");
    run.expect_status(EXIT_POWEROFF);
}

/// The benchmark paths (`bench-drivers`) run and check what they move: a 4 KiB grant copy
/// must bring exactly what mapping the grant shows, in dom0 (its own grant) and between domUs.
#[test]
fn driver_benchmarks_run_and_grant_copy_moves_the_right_bytes() {
    let _m = shared();
    let run = boot(
        "drvbench",
        "loglvl=info domu=bench:1 domu=granter:2",
        "test=grantbench+xsbench",
        &["scenario=drvbench peer=2 bytes=8000", "scenario=grants role=granter peer=1"],
    )
    .run();
    run.expect("TEST grantbench: PASS");
    run.expect("[bench] RESULT drvbench: done");
    run.expect("[granter] RESULT grants-granter: saw write 0xbeef, access ended true");
    for name in ["grant-copy-4k", "grant-map-unmap", "xenstore-read-dom0-local"] {
        run.expect(&format!("BENCH {name}: median"));
    }
    for name in ["xenstore-read", "grant-copy-4k", "console-ring", "console-io"] {
        assert!(
            run.text().lines().any(|l| l.contains("[bench]") && l.contains(name)),
            "no domU figure {name}:\n{}",
            run.text()
        );
    }
    run.expect_not("FAIL");
    run.expect_status(EXIT_POWEROFF);
}

/// What a newcomer sees: `./scripts/run` with no arguments boots dom0 and two guests that print
/// through their PV consoles (dom0 prefixes their lines), and ends with dom0 powering off.
#[test]
fn scripts_run_shows_dom0_and_guests_printing_through_pv_consoles() {
    let _m = shared();
    let out = std::process::Command::new(root().join("scripts/run"))
        .env("TIMEOUT", "120")
        .env_remove("GUESTS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/run");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::write(root().join("target/test-logs/scripts-run.log"), &text);
    assert!(out.status.success(), "scripts/run failed:\n{text}");
    for want in [
        "dom0: xen-core dom0 starting",
        "[guest1] pv-guest: hello from a PV guest",
        "[guest1] tick 4",
        "[guest2] pv-guest: hello from a PV guest",
        "dom0: all domUs are gone",
        "==> dom0 powered off",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // Through the rings, not the emergency console (whose lines the hypervisor prefixes (dN)).
    assert!(!text.contains("(d1) tick"), "{text}");
}
