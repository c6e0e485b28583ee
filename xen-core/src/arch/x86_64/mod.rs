//! x86_64: boot, processor tables, entry/exit, paging, interrupts, time, guest-memory access.
//! This and `hv::mem` are the only places allowed `unsafe`.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod io;
pub mod irq;
pub mod layout;
pub mod paging;
pub mod percpu;
pub mod power;
pub mod rtc;
pub mod serial;
pub mod time;
pub mod uaccess;
