//! Boot: from the loader's hand-off to the first guest.
//!
//! Hardware-free and host-tested: the multiboot information parser (`multiboot`, which reads
//! memory only through an accessor and clamps every length it is given), the command-line
//! syntax (`cmdline`) and the boot memory map with its bump allocator (`memmap`). On the
//! hardware: the hypervisor's options (`options`) and the boot sequence itself (`setup`),
//! which calls every other folder once, in order, and ends by entering dom0.
//!
//! Trusted: the loader's memory map and module bounds (what else would we go by), checked
//! only for consistency; the dom0 kernel is an image like any other and is validated by the
//! builder.

pub mod cmdline;
pub mod memmap;
pub mod multiboot;
#[cfg(target_os = "none")]
pub mod options;
#[cfg(target_os = "none")]
pub mod setup;
