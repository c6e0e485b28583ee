//! The PV guest kernel runtime, shared by the `pv-guest` kernel and dom0: boot through Xen's
//! ELF notes, the trap table and callbacks, the console (`console_io`, then the PV console
//! ring), the heap, event dispatch, time, grant tables, the XenStore client and xenbus, and a
//! secondary-console frontend. A kernel built on it names its main function with
//! [`kernel_main!`]; everything before that is done here.
//!
//! `unsafe` lives in `arch` (entry, stubs, hypercall page), `heap` (the arena), `shared`
//! (memory shared with the hypervisor and other domains), and in single marked calls that
//! change this kernel's own mappings or wrap a page just mapped as a `SharedPage` (`boot`,
//! `grant`, `mm`, `traps`); `selftest`, `hostile` and one stale-handle check in `scenarios`
//! misuse the ABI on purpose to check the hypervisor refuses it.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod drvbench;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod frontends;
#[cfg(target_os = "none")]
pub mod grant;
#[cfg(target_os = "none")]
pub mod hostile;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod scenarios;
#[cfg(target_os = "none")]
pub mod selftest;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod xenbus;
#[cfg(target_os = "none")]
pub mod xenstore;

#[cfg(target_os = "none")]
pub use boot::{cmdline, cmdline_param, cmdline_value, print_start_info, shutdown, start_info};
pub use hypercall_abi as abi;

/// Declares the kernel's main function, called once the runtime is up with the domain's
/// `start_info`: `pv_guest::kernel_main!(main);` where `fn main(si: &StartInfo) -> !`.
#[macro_export]
macro_rules! kernel_main {
    ($f:path) => {
        #[unsafe(no_mangle)]
        fn pv_kernel_main(si: &'static $crate::abi::start_info::StartInfo) -> ! {
            $f(si)
        }
    };
}
