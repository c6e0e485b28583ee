//! The PV guest kernel runtime: what any kernel on Xen's x86_64 PV ABI needs before its own
//! work starts, and what dom0 is built on. A kernel names its main function with
//! [`kernel_main!`]; everything before that is done here. The crate's `pv-guest` binary (the
//! system tests' guest kernel) is not part of this library: it lives in `src/main.rs` and
//! `src/kernel/`.
//!
//! Where things are, by concept:
//! - `arch/`: Xen ELF notes, the entry point, the hypercall page, the assembly halves of the
//!   exception, event and failsafe callbacks, the trap frame.
//! - `boot`: from entry to the kernel's main (start_info check, heap, console, trap table,
//!   memory, events, grants, XenStore), the command line, and the way out (`shutdown`, panic).
//! - `traps`: the virtual trap table and the Rust side of every callback.
//! - `events`: event channels (shared_info bitmaps, handlers per port, blocking).
//! - `time`: system time from `vcpu_time_info`, sleeping.
//! - `memory/`: the heap, the kernel's own pages and mapping slots, memory shared with the
//!   hypervisor and other domains.
//! - `grant`: the grant table (granting own pages, mapping and copying others').
//! - `console`: `print!`/`println!` and `log`, over `console_io` then the PV console ring.
//! - `xenstore`: the XenStore client over the domain's ring, and the `Store` trait xenbus code
//!   uses (dom0 implements it over its in-process xenstored).
//! - `xenbus`: how the two ends of a split device find each other and agree on its state.
//! - `control`, `balloon`: what the toolstack asks through XenStore (`control/shutdown`,
//!   `memory/target`), and the balloon that gives frames back and takes them again.
//! - `frontends/`: this kernel's halves of split devices (the secondary console, the block
//!   device over Xen's blkif, the network device over Xen's netif).
//! - `netstack`: TCP/IP from `smoltcp` over any link (netfront here, dom0's NIC), with the
//!   echo server and client the network tests and benchmarks run.
//! - `bench`: measuring cycles and printing `BENCH` lines.
//!
//! `unsafe` lives in `arch` (entry, stubs, hypercall page), `memory::heap` (the arena),
//! `memory::shared` (memory shared with the hypervisor and other domains), and in single
//! marked calls that change this kernel's own mappings or wrap a page just mapped as a
//! `SharedPage` (`boot`, `grant`, `memory::pages`, `traps`), or give a frame back (`balloon`).
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(target_os = "none")]
pub mod balloon;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod control;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod frontends;
#[cfg(target_os = "none")]
pub mod grant;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod netstack;
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
