//! What the hypervisor emulates for a PV kernel (writable page tables, MSRs, control and debug
//! registers, port I/O under a virtual IOPL, the forced-emulation CPUID), checked from inside
//! a guest on xen-core as dom0 and as a domU, and against Xen 4.17 booting the same image as
//! dom0: every `EMUL same` line must read the same on both.

use tests::{Boot, EXIT_POWEROFF, Run, image, root, xen_reference};

const TESTS: &str = "test=ptwr+privregs+cpuid+iopl";
const NAMES: [&str; 4] = ["ptwr", "privregs", "cpuid", "iopl"];

/// The `EMUL same` lines of a run, without any domain prefix.
fn same_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find("EMUL same ").map(|at| l[at..].trim_end().to_string()))
        .collect()
}

/// The four registers of a printed CPUID leaf.
fn leaf(text: &str, name: &str) -> [u32; 4] {
    let line = text
        .lines()
        .find(|l| l.contains(&format!("cpuid {name}: ")))
        .unwrap_or_else(|| panic!("no cpuid {name} line:\n{text}"));
    let regs: Vec<u32> = line
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| u32::from_str_radix(w, 16).ok())
        .collect();
    assert_eq!(regs.len(), 4, "{line}");
    [regs[0], regs[1], regs[2], regs[3]]
}

fn dom0_run() -> Run {
    let run = Boot::new("emulation-dom0", "pv-guest", TESTS).run();
    run.expect_tests_pass(&NAMES);
    run.expect_status(EXIT_POWEROFF);
    run
}

#[test]
fn emulation_selftests_pass_in_dom0_and_a_domu() {
    let run = dom0_run();
    let text = run.text();
    // Beyond what Xen hides from PV guests: XSAVE and AVX (FXSAVE state only), MCE/MCA, MTRR,
    // FSGSBASE, AVX2, and the XSAVE leaf.
    let [_, _, c1, d1] = leaf(&text, "0x1.0");
    for (reg, bit, name) in
        [(c1, 26, "XSAVE"), (c1, 28, "AVX"), (d1, 7, "MCE"), (d1, 12, "MTRR"), (d1, 14, "MCA")]
    {
        assert_eq!(reg & (1 << bit), 0, "{name} shown:\n{text}");
    }
    let [_, b7, _, _] = leaf(&text, "0x7.0");
    assert_eq!(b7 & 0x21, 0, "FSGSBASE or AVX2 shown");
    assert_eq!(leaf(&text, "0xd.0"), [0; 4]);
    let domu = Boot::new("emulation-domu", "dom0", "")
        .hv_args("loglvl=info domu=u:1:16M")
        .domus(&[TESTS])
        .run();
    domu.expect_tests_pass(&NAMES);
    domu.expect_status(EXIT_POWEROFF);
}

#[test]
fn emulation_matches_xen_4_17() {
    let ours = dom0_run();
    let kernel = image("pv-guest").to_string_lossy().into_owned();
    let args = ["--timeout", "240", "--until", "pv-guest: shutting down", &kernel, TESTS];
    let Some(xen) = xen_reference(&args) else {
        assert!(
            std::env::var_os("REQUIRE_XEN_REFERENCE").is_none(),
            "REQUIRE_XEN_REFERENCE is set but the xen-reference tool is missing"
        );
        return;
    };
    let _ = std::fs::create_dir_all(root().join("target/test-logs"));
    let _ = std::fs::write(root().join("target/test-logs/emulation-xen.log"), &xen);
    for n in NAMES {
        assert!(xen.contains(&format!("TEST {n}: PASS")), "{n} on Xen 4.17:\n{xen}");
    }
    assert_eq!(same_lines(&ours.text()), same_lines(&xen), "xen-core and Xen 4.17 differ");
}
