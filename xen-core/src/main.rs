//! xen-core: the hypervisor image. Booted by a multiboot1 loader (QEMU `-kernel`, GRUB) with
//! the dom0 kernel as module 0 and its ramdisk as module 1, exactly as Xen is booted.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
use xen_core as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("xen-core is a bare-metal image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
