//! Per-CPU data, reached through the GS base while the hypervisor runs (the entry code
//! `swapgs`es on every transition from and to ring 3). The first fields are read by assembly at
//! the offsets exported below, checked at compile time against the Rust layout.

use core::mem::offset_of;
use core::sync::atomic::AtomicU64;

/// The part of per-CPU state the entry assembly touches, plus the CPU's identity.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Top of this CPU's hypervisor stack; `syscall` entry switches to it.
    pub stack_top: AtomicU64,
    /// The guest's rsp, parked by the `syscall` entry until it is pushed into the frame.
    pub scratch_rsp: AtomicU64,
    /// Logical CPU number.
    pub cpu_id: u32,
    _pad: u32,
}

pub const PERCPU_STACK_TOP: usize = offset_of!(PerCpu, stack_top);
pub const PERCPU_SCRATCH_RSP: usize = offset_of!(PerCpu, scratch_rsp);
static_assertions::const_assert_eq!(PERCPU_STACK_TOP, 0);
static_assertions::const_assert_eq!(PERCPU_SCRATCH_RSP, 8);

impl PerCpu {
    pub const fn new(cpu_id: u32) -> Self {
        Self { stack_top: AtomicU64::new(0), scratch_rsp: AtomicU64::new(0), cpu_id, _pad: 0 }
    }
}
