//! Scheduling and time.

#[cfg(target_os = "none")]
pub mod clock;
pub mod credit;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub mod sched_op;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod vcpu_op;

#[cfg(target_os = "none")]
pub use run::*;
