//! Boot.

pub mod cmdline;
pub mod memmap;
pub mod multiboot;
#[cfg(target_os = "none")]
pub mod setup;
