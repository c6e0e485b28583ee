//! The porting kit: `hypercall-abi/examples/minimal-kernel`, the kernel the porting guide walks
//! through, built the way a user's crate outside this repository is (the folder copied out of
//! the tree, its path dependency pointed back at hypercall-abi, no configuration of ours in
//! sight), then booted on xen-core as dom0 and as a domU, and on real Xen 4.17 as dom0. Each
//! step the kernel takes prints a line; every line must come, in order.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tests::*;

/// The lines the kernel prints after its steps (after `minimal-kernel: `), in order.
const STEPS: &[&str] = &[
    "hello from a PV kernel built on hypercall-abi alone",
    "start_info: nr_pages ",
    "hypervisor: Xen ABI version ",
    "shared_info mapped: system time ",
    "timer upcall on port ",
    "grant copy from gref 8 of d",
    "all steps passed: powering off",
];

/// Builds the example kernel once per test binary; its image.
fn example_kernel() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(build_example)
}

fn build_example() -> PathBuf {
    let src = root().join("hypercall-abi/examples/minimal-kernel");
    // Outside the repository, so that neither our .cargo/config.toml nor our workspace applies.
    let copy = std::env::temp_dir().join(format!("minimal-kernel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(&src, &copy);
    let manifest = copy.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let dep = "path = \"../..\"";
    assert!(text.contains(dep), "the example's Cargo.toml names hypercall-abi as {dep}");
    let abi = root().join("hypercall-abi");
    std::fs::write(
        &manifest,
        text.replace(dep, &format!("path = {:?}", abi.display().to_string())),
    )
    .unwrap();
    let target_dir = root().join("target/example-kernel");
    let out = Command::new("cargo")
        .args(["build", "--release"])
        .current_dir(&copy)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    let _ = std::fs::remove_dir_all(&copy);
    assert!(
        out.status.success(),
        "building the example kernel outside the tree failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = target_dir.join("x86_64-unknown-none/release/minimal-kernel");
    assert!(image.exists(), "{} was not built", image.display());
    image
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// Asserts that every step's line appears in `text`, in order, each with `prefix` before it.
#[track_caller]
fn expect_steps(text: &str, prefix: &str) {
    let mut rest = text;
    for step in STEPS {
        let want = format!("{prefix}minimal-kernel: {step}");
        match rest.find(&want) {
            Some(at) => rest = &rest[at + want.len()..],
            None => panic!("no line {want:?} after the previous step; output:\n{text}"),
        }
    }
    assert!(!text.contains("minimal-kernel: FAIL"), "a step failed:\n{text}");
    assert!(!text.contains("minimal-kernel: panic"), "the kernel panicked:\n{text}");
}

#[test]
fn minimal_kernel_boots_on_xen_core_as_dom0() {
    let mut boot = Boot::new("minimal-kernel-dom0", "dom0", "");
    boot.modules[0] = (example_kernel().to_path_buf(), "porting=dom0".into());
    let run = boot.run();
    expect_steps(&run.text(), "");
    run.expect("cmdline 'porting=dom0'");
    run.expect("grant copy from gref 8 of d0: 22 bytes, 'copied through a grant'");
    run.expect("domain 0 (Domain-0) shut down: poweroff");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn minimal_kernel_boots_on_xen_core_as_a_domu() {
    let run = Boot::new("minimal-kernel-domu", "dom0", "")
        .hv_args("loglvl=info domu=mini:1:16M")
        .module(example_kernel().to_path_buf(), "porting=domu")
        .run();
    // A domU's console_io lines reach the serial line with its domain id in front.
    expect_steps(&run.text(), "(d1) ");
    run.expect("cmdline 'porting=domu'");
    run.expect("grant copy from gref 8 of d1: 22 bytes, 'copied through a grant'");
    run.expect("domain 1 (mini) shut down: poweroff");
    run.expect("dom0: all domUs are gone");
    run.expect_status(EXIT_POWEROFF);
}

#[test]
fn minimal_kernel_boots_on_xen_4_17_as_dom0() {
    let kernel = example_kernel().to_str().expect("a UTF-8 path").to_string();
    let args = ["--timeout", "240", "--until", "Hardware Dom0 halted", &kernel, "porting=xen"];
    let Some(out) = xen_reference_or_skip(&args) else { return };
    let _ = std::fs::create_dir_all(root().join("target/test-logs"));
    let _ = std::fs::write(root().join("target/test-logs/minimal-kernel-xen.log"), &out);
    expect_steps(&out, "");
    assert!(out.contains("cmdline 'porting=xen'"), "{out}");
    assert!(out.contains("grant copy from gref 8 of d0: 22 bytes, 'copied through a grant'"));
    // Xen acknowledged the poweroff: the run ended on its line, not on the timeout.
    assert!(out.contains("Hardware Dom0 halted"), "Xen did not see dom0 power off:\n{out}");
}
