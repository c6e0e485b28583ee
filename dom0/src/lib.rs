//! dom0: the privileged domain's kernel, built on `pv-guest`'s runtime. Hardware-free logic
//! (xenstored, backends' request validation, the toolstack's domain builder) lives in this
//! library so it is unit-tested on the host; `main.rs` is the bare-metal kernel.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod ctl;
#[cfg(target_os = "none")]
pub mod services;
pub mod xenstore;
