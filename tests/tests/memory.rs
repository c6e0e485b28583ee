//! PV memory management under attack: a hostile domU tries, one at a time, everything the
//! issue lists while a victim domU checksums its memory; frame accounting across repeated
//! domain creation and destruction; ballooning, multicall and dom0's I/O privilege.

use tests::*;

#[test]
fn a_hostile_guest_is_refused_everything_and_the_victim_is_untouched() {
    let run = Boot::new("hostile", "dom0", "")
        .hv_args("loglvl=info domu=victim:1:16M domu=hostile:2:16M")
        .domus(&["scenario=victim seconds=8", "scenario=hostile"])
        .run();
    let attacks = run.matching("ATTACK ");
    let expected = [
        "map-hypervisor-frame",
        "map-hypervisor-frame-readonly",
        "map-foreign-frames",
        "writable-own-l1",
        "writable-own-l4",
        "pin-l1-mapping-hypervisor",
        "pin-l2-with-superpages",
        "new-baseptr-garbage",
        "new-baseptr-hypervisor",
        "free-page-table-in-use",
        "wild-pointers-and-huge-counts",
        "cli",
        "hlt",
        "mov-to-cr0",
        "mov-to-cr3",
        "wrmsr-lstar",
        "in-port",
        "out-port",
        "lgdt",
        "invlpg",
        "map-mmio-domid-io",
        "map-mmio",
        "map-ioapic",
        "map-local-apic",
        "map-own-ram-as-domid-io",
        "physdev-map-pirq",
        "physdev-map-pirq-for-dom0",
        "physdev-setup-gsi",
        "physdev-unmap-pirq",
        "evtchn-bind-pirq",
        "physdev-eoi",
    ];
    for name in expected {
        run.expect(&format!("ATTACK {name}: REFUSED"));
    }
    assert!(!attacks.iter().any(|l| l.contains("SUCCEEDED")), "{attacks:#?}");
    // The refusals are real: a read-only mapping of the guest's own table is allowed.
    run.expect("ATTACK control-readonly-own-l1: allowed");
    run.expect("ATTACK done: hostile domain still running: true");
    let before = run.matching("RESULT victim: before");
    let after = run.matching("RESULT victim: after");
    assert_eq!(before.len(), 1, "{}", run.text());
    assert!(after.first().is_some_and(|l| l.contains("unchanged")), "{}", run.text());
    let sum = |l: &str| l.split_whitespace().find(|w| w.starts_with("0x")).unwrap().to_string();
    assert_eq!(sum(before[0]), sum(after[0]));
    run.expect_not("FATAL");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn repeated_create_and_destroy_returns_every_frame() {
    let run = Boot::new("frames", "dom0", "frames=20").run();
    let line = run.line("RESULT frames:");
    println!("{line}");
    assert!(line.ends_with(", 0 leaked"), "{line}");
    run.expect_not("RESULT frames: FAIL");
    assert_eq!(run.matching("destroyed: 2051 pages returned").len(), 20, "{}", run.text());
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn ballooning_multicall_and_io_privilege_in_dom0_and_a_domu() {
    let tests = "test=memory+multicall+iopl";
    let run = Boot::new("memory-selftests", "dom0", tests)
        .hv_args("loglvl=info domu=u:1:16M")
        // The domU also checks it may not set the machine's clock (platform_op: EPERM).
        .domus(&["test=memory+multicall+iopl+settime"])
        .run();
    for t in ["memory", "multicall", "iopl"] {
        assert_eq!(run.matching(&format!("TEST {t}: PASS")).len(), 2, "{t}: {}", run.text());
    }
    run.expect("TEST settime: PASS");
    run.expect_not("FAIL");
    run.expect_status(EXIT_POWEROFF);
}
