//! `vcpu_op` (hypercall 24): bring vCPUs up and down, per-vCPU timers, the runstate area and
//! relocating `vcpu_info`, plus `vcpu_guest_context` for `VCPUOP_initialise`.
//!
//! Every op is `vcpu_op(cmd, vcpu_id, arg)`; most act on a vCPU of the calling domain.

use crate::arch::{CpuUserRegs, TrapInfo};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Set the initial register state of a down vCPU ([`VcpuGuestContext`]).
pub const VCPUOP_INITIALISE: u32 = 0;
/// Start a vCPU that has been initialised; arg NULL.
pub const VCPUOP_UP: u32 = 1;
/// Stop a vCPU; arg NULL.
pub const VCPUOP_DOWN: u32 = 2;
/// Returns 1 if the vCPU is up; arg NULL.
pub const VCPUOP_IS_UP: u32 = 3;
/// Copy out the vCPU's runstate ([`VcpuRunstateInfo`]).
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Register a guest area the hypervisor keeps updated with the runstate
/// ([`VcpuRegisterRunstateMemoryArea`]).
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Periodic timer raising `VIRQ_TIMER` ([`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer; arg NULL.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Single-shot timer raising `VIRQ_TIMER` ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Cancel the single-shot timer; arg NULL.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Move this vCPU's `vcpu_info` into a guest page ([`VcpuRegisterVcpuInfo`]).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to the vCPU; arg NULL.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Physical CPU identity (dom0) ([`VcpuGetPhysid`]).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Register a guest area kept updated with `vcpu_time_info` ([`VcpuRegisterTimeMemoryArea`]).
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;
/// As `register_runstate_memory_area`, by guest physical address.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u32 = 14;
/// As `register_vcpu_time_memory_area`, by guest physical address.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u32 = 15;

/// Running on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// Runnable, waiting for a CPU.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// Blocked (idle).
pub const RUNSTATE_BLOCKED: i32 = 2;
/// Offline, or preempted involuntarily.
pub const RUNSTATE_OFFLINE: i32 = 3;
/// Set in `state_entry_time` while the hypervisor updates a registered runstate area (with
/// `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// Runstate (48 bytes). OUT (hypervisor).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*` now.
    pub state: i32,
    /// Padding.
    pub _pad: u32,
    /// System time (ns) the current state was entered.
    pub state_entry_time: u64,
    /// ns spent in each `RUNSTATE_*`; the sum tracks system time.
    pub time: [u64; 4],
}

/// `VCPUOP_register_runstate_memory_area` and `VCPUOP_register_vcpu_time_memory_area`
/// argument (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// IN: guest virtual address of the area (0 unregisters).
    pub addr: u64,
}

/// `VCPUOP_register_vcpu_time_memory_area` argument (same layout).
pub type VcpuRegisterTimeMemoryArea = VcpuRegisterRunstateMemoryArea;

/// `VCPUOP_set_periodic_timer` argument (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuSetPeriodicTimer {
    /// IN: period in ns.
    pub period_ns: u64,
}

/// `VcpuSetSingleshotTimer::flags`: fail with `-ETIME` if the timeout is already past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `VCPUOP_set_singleshot_timer` argument (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuSetSingleshotTimer {
    /// IN: absolute system time (ns) to fire at.
    pub timeout_abs_ns: u64,
    /// IN: `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
}

/// `VCPUOP_register_vcpu_info` argument (16 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuRegisterVcpuInfo {
    /// IN: MFN of the page to hold this vCPU's `vcpu_info`.
    pub mfn: u64,
    /// IN: offset within the page (the 64 bytes must not cross it).
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}

/// `VCPUOP_get_physid` argument (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuGetPhysid {
    /// OUT: APIC id in bits 0..32, ACPI id in bits 32..64.
    pub phys_id: u64,
}

/// `VcpuGuestContext::flags`: `fpu_ctxt` is valid.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `flags`: start in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `flags`: the failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `flags`: the syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `flags`: the vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// Full vCPU state for `VCPUOP_initialise` (5168 bytes). IN (guest or toolstack).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuGuestContext {
    /// FXSAVE image of the FPU/SSE state.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers, rip, rflags, selectors.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT, indexed by vector.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT frames (MFNs).
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector (as for `stack_switch`).
    pub kernel_ss: u64,
    /// Kernel stack pointer (as for `stack_switch`).
    pub kernel_sp: u64,
    /// CR0-CR7; `ctrlreg[3]` is the kernel L4 as CR3, `ctrlreg[1]` the user L4.
    pub ctrlreg: [u64; 8],
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// Event callback entry.
    pub event_callback_eip: u64,
    /// Failsafe callback entry.
    pub failsafe_callback_eip: u64,
    /// Syscall callback entry.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

crate::assert_layout!(VcpuRunstateInfo, size = 48, state = 0, state_entry_time = 8, time = 16);
crate::assert_layout!(VcpuRegisterRunstateMemoryArea, size = 8, addr = 0);
crate::assert_layout!(VcpuSetPeriodicTimer, size = 8, period_ns = 0);
crate::assert_layout!(VcpuSetSingleshotTimer, size = 16, timeout_abs_ns = 0, flags = 8);
crate::assert_layout!(VcpuRegisterVcpuInfo, size = 16, mfn = 0, offset = 8, rsvd = 12);
crate::assert_layout!(VcpuGetPhysid, size = 8, phys_id = 0);
crate::assert_layout!(
    VcpuGuestContext,
    size = 5168,
    fpu_ctxt = 0,
    flags = 512,
    user_regs = 520,
    trap_ctxt = 720,
    ldt_base = 4816,
    ldt_ents = 4824,
    gdt_frames = 4832,
    gdt_ents = 4960,
    kernel_ss = 4968,
    kernel_sp = 4976,
    ctrlreg = 4984,
    debugreg = 5048,
    event_callback_eip = 5112,
    failsafe_callback_eip = 5120,
    syscall_callback_eip = 5128,
    vm_assist = 5136,
    fs_base = 5144,
    gs_base_kernel = 5152,
    gs_base_user = 5160
);
