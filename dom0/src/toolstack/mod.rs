//! dom0's toolstack: the privileged domain's control of the others, which builds every domU
//! (the hypervisor builds only dom0), as Xen's does.
//!
//! - `config` (host-tested): the `xl.cfg` subset a domain is described with;
//! - `vif` (host-tested): a `vif` entry (xl's `mac=...,bridge=...` subset) and made-up MACs;
//! - `archive` (host-tested): dom0's ramdisk, a newc cpio archive of kernels and configs;
//! - `on_disk`: the same archive format on one of dom0's disks, searched after the ramdisk;
//! - `ctl`: the `domctl`, `sysctl` and on-behalf-of hypercalls, thin wrappers;
//! - `memory`: dom0's window for mapping its spare frames and a new domain's frames;
//! - `builder`: one domU from a configuration, through domctl and the shared builder
//!   (`pvbuild`);
//! - `domains`: the [`Toolstack`] (create, destroy, pause, unpause, shutdown, list,
//!   scheduling, and the `on_poweroff`/`on_reboot`/`on_crash` actions when a domain shuts
//!   down): the functions the interactive shell calls;
//! - `commands`: what dom0's command line asks for at boot (`create=`, `cycles=`, `frames=`,
//!   `cpushare=`), printing the `RESULT` lines the system tests read.

pub mod archive;
pub mod config;
pub mod vif;

#[cfg(target_os = "none")]
pub mod builder;
#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
pub mod ctl;
#[cfg(target_os = "none")]
pub mod domains;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod on_disk;

#[cfg(target_os = "none")]
pub use domains::Toolstack;
