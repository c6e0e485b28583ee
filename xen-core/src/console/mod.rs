//! Console.

#[cfg(target_os = "none")]
pub mod console_io;
#[cfg(target_os = "none")]
pub mod logging;
pub mod ratelimit;
