//! x86_64: boot, processor tables, entry/exit, paging, interrupts, time, guest-memory access.
//! This and the memory core (`mm::machine`, `mm::heap`) are the only places allowed
//! `unsafe`. Nothing here names the generic code above it: interrupts report what they were
//! (`irq::handle`), and the Rust entry points are defined by the image (`entry_points!`).

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod io;
pub mod ioapic;
pub mod irq;
pub mod layout;
pub mod paging;
pub mod percpu;
pub mod power;
pub mod privregs;
pub mod rtc;
pub mod serial;
pub mod time;
pub mod uaccess;
pub mod vmap;
