//! Domains.

#[cfg(target_os = "none")]
pub mod build;
#[cfg(target_os = "none")]
pub mod domctl;
pub mod pvbuild;
#[cfg(target_os = "none")]
mod table;

#[cfg(target_os = "none")]
pub use table::*;
