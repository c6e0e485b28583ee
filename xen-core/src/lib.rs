//! xen-core's hardware-free logic, compiled for the host too so `cargo test` covers it: the
//! command line and multiboot parsers, the boot memory map, the frame table and page-table
//! validation rules, the PV domain builder (reusable by dom0's toolstack), the bounce-frame
//! layout, and the bookkeeping of event channels and the scheduler. The hypervisor binary
//! (`main.rs`) wires these to the hardware.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod bounce;
pub mod cmdline;
pub mod credit;
pub mod evtchn;
pub mod grant;
pub mod memmap;
pub mod mm;
pub mod multiboot;
pub mod pvbuild;
pub mod ratelimit;
