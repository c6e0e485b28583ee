//! Kernels written for Xen by others, beyond Linux, booted as domUs on xen-core: what their
//! authors wrote against Xen's ABI must work here as it does there.
//!
//! - Debian's pvgrub2 (`grub-xen-host`: GRUB built as a 64-bit Xen PV kernel, which Xen hosts
//!   use to boot domUs from their own disks). With no disk it reaches its command line on its
//!   PV console; we type a command there and `halt` it.
//!
//! The package comes from apt-get into the Linux tests' cache; without apt-get the test says so
//! and skips, except under CI (`CI` set), where that fails.

use tests::linux::{cache_dir, fetch_and_unpack};
use tests::*;

#[test]
fn debians_pvgrub_reaches_its_prompt_answers_and_halts() {
    let grub = match fetch_and_unpack(&cache_dir(), "grub-xen-host") {
        Ok(dir) => dir.join("usr/lib/grub-xen/grub-x86_64-xen.bin"),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "no grub-xen-host under CI: {e}");
            eprintln!("SKIPPED: no grub-xen-host: {e}");
            return;
        }
    };
    let _machine = shared();
    // GRUB expands the variable in what it prints, not in the echoed command line.
    let run = Boot::new("pvgrub", "dom0", "")
        .hv_args("loglvl=info smap=0 domu=grub:1:64M")
        .module(grub, "")
        .type_after("Minimal BASH-like line editing", "route 1\n")
        .type_after("console input now goes to d1", "set answer=42; echo grub-says-$answer\n")
        .type_after("grub-says-42", "halt\n")
        .timeout_secs(120)
        .run();
    run.expect("Welcome to GRUB!");
    run.expect("GNU GRUB  version 2.06");
    run.expect("grub-says-42");
    run.expect("domain 1 (grub) shut down: poweroff");
    run.expect("dom0: all domUs are gone");
    run.expect_status(EXIT_POWEROFF);
}
