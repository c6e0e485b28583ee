//! xen-core: the hypervisor image. Booted by a multiboot1 loader (QEMU `-kernel`, GRUB) with
//! the dom0 kernel as module 0 and its ramdisk as module 1, exactly as Xen is booted. All of
//! it is the `xen_core` library; the image only names where the hardware enters it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
xen_core::entry_points! {
    start: xen_core::boot::setup::start,
    trap: xen_core::traps::entry::trap,
    syscall: xen_core::traps::entry::syscall,
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("xen-core is a bare-metal image: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
