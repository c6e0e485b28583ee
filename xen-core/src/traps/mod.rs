//! Traps.

pub mod bounce;
#[cfg(target_os = "none")]
pub mod callbacks;
#[cfg(target_os = "none")]
pub mod emulate;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod physdev_op;
