//! Event channels.

#[cfg(target_os = "none")]
pub mod event_channel_op;
#[cfg(target_os = "none")]
mod pending;
pub mod ports;

#[cfg(target_os = "none")]
pub use pending::*;
