//! The `pv-guest` kernel: a small PV guest on the runtime in this crate's library, and the
//! system tests' probe. It boots as a domU or, like any Xen PV kernel, as dom0. Everything
//! only this kernel uses lives under `src/kernel/` (the runtime library never includes it):
//! `kernel/mod.rs` its main function, `kernel/selftest/` the self-tests (`test=...`),
//! `kernel/scenarios/` the multi-domain scenarios, attacks and driver benchmarks
//! (`scenario=...`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-guest is a PV kernel image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
