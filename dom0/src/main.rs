//! dom0: the privileged domain's kernel. It reports what the hypervisor told it, runs the
//! self-tests its command line names (`test=...`), looks after the domUs the hypervisor started
//! at boot until they are all gone, and powers the machine off. The kernel binary's own code is
//! in `src/kernel/`; everything else in `src/` is dom0's library (`lib.rs` maps it).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0 is a PV kernel image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
