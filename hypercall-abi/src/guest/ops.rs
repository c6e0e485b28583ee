//! Wrappers for the remaining multi-op hypercalls: vCPUs, physical devices and `platform_op`.
//!
//! The generic `*_op` functions are `unsafe`: the hypervisor interprets the pointer by `cmd`.
//! The typed helpers cover the ops whose only memory effect is on the struct they borrow.

use super::{ptr_of_mut, raw};
use crate::Errno;
use crate::errno::{HcResult, ret_to_result};
use crate::nr;
use crate::physdev::{
    MAP_PIRQ_TYPE_GSI, PHYSDEVOP_EOI, PHYSDEVOP_IRQ_STATUS_QUERY, PHYSDEVOP_MAP_PIRQ,
    PHYSDEVOP_SET_IOPL, PHYSDEVOP_SETUP_GSI, PHYSDEVOP_UNMAP_PIRQ, PhysdevEoi,
    PhysdevIrqStatusQuery, PhysdevMapPirq, PhysdevSetIopl, PhysdevSetupGsi, PhysdevUnmapPirq,
};
use crate::types::DomId;
use crate::vcpu::{
    VCPUOP_GET_RUNSTATE_INFO, VCPUOP_IS_UP, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VcpuRunstateInfo,
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
};
use zerocopy::{FromBytes, IntoBytes};

// ---- vcpu_op ----

/// Any vCPU op (`vcpu_op(cmd, vcpu, arg)`).
///
/// # Safety
///
/// `T` must be the argument of `cmd` (`VCPUOP_*`), and the op's effect must not invalidate
/// memory Rust code relies on: `register_vcpu_info` and the `register_*_area` ops make the
/// hypervisor write into guest memory *after* the call, for as long as they stay registered;
/// `initialise`/`up` start a vCPU running the given context.
pub unsafe fn vcpu_op<T: IntoBytes + FromBytes>(cmd: u32, vcpu: u32, arg: &mut T) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; the rest is the caller's contract.
    ret_to_result(unsafe { raw::hypercall3(nr::VCPU_OP, cmd.into(), vcpu.into(), ptr_of_mut(arg)) })
}

fn vcpu_op_null(cmd: u32, vcpu: u32) -> HcResult {
    // SAFETY: callers pass only ops whose argument is NULL and that touch no guest memory.
    ret_to_result(unsafe { raw::hypercall3(nr::VCPU_OP, cmd.into(), vcpu.into(), 0) })
}

/// True if `vcpu` is up.
pub fn vcpu_is_up(vcpu: u32) -> Result<bool, Errno> {
    vcpu_op_null(VCPUOP_IS_UP, vcpu).map(|v| v != 0)
}

/// Runstate of `vcpu` (time spent running, runnable, blocked, offline).
pub fn vcpu_runstate_info(vcpu: u32) -> Result<VcpuRunstateInfo, Errno> {
    let mut info = VcpuRunstateInfo::default();
    // SAFETY: VCPUOP_get_runstate_info only writes this struct.
    unsafe { vcpu_op(VCPUOP_GET_RUNSTATE_INFO, vcpu, &mut info) }?;
    Ok(info)
}

/// Periodic timer on `vcpu` raising `VIRQ_TIMER` every `period_ns`.
pub fn vcpu_set_periodic_timer(vcpu: u32, period_ns: u64) -> HcResult {
    let mut t = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: VCPUOP_set_periodic_timer only reads this struct.
    unsafe { vcpu_op(VCPUOP_SET_PERIODIC_TIMER, vcpu, &mut t) }
}

/// Stop the periodic timer of `vcpu`.
pub fn vcpu_stop_periodic_timer(vcpu: u32) -> HcResult {
    vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, vcpu)
}

/// Single-shot timer on `vcpu` at absolute system time `timeout_abs_ns` (`flags`:
/// `VCPU_SSHOTTMR_future` to get `ETIME` if it is already past).
pub fn vcpu_set_singleshot_timer(vcpu: u32, timeout_abs_ns: u64, flags: u32) -> HcResult {
    let mut t = VcpuSetSingleshotTimer { timeout_abs_ns, flags, _pad: 0 };
    // SAFETY: VCPUOP_set_singleshot_timer only reads this struct.
    unsafe { vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, vcpu, &mut t) }
}

/// Cancel the single-shot timer of `vcpu`.
pub fn vcpu_stop_singleshot_timer(vcpu: u32) -> HcResult {
    vcpu_op_null(VCPUOP_STOP_SINGLESHOT_TIMER, vcpu)
}

// ---- physdev_op ----

/// Any physdev op (`physdev_op(cmd, arg)`).
///
/// # Safety
///
/// `T` must be the argument of `cmd` (`PHYSDEVOP_*`); for `set_iobitmap` the bitmap must stay
/// valid and unchanged while installed (the hypervisor reads it on every port access).
pub unsafe fn physdev_op<T: IntoBytes + FromBytes>(cmd: u32, arg: &mut T) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; the rest is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::PHYSDEV_OP, cmd.into(), ptr_of_mut(arg)) })
}

/// Set the virtual I/O privilege level (0..=3) that `in`/`out` are checked against.
pub fn physdev_set_iopl(iopl: u32) -> HcResult {
    let mut op = PhysdevSetIopl { iopl };
    // SAFETY: PHYSDEVOP_set_iopl only reads this struct.
    unsafe { physdev_op(PHYSDEVOP_SET_IOPL, &mut op) }
}

/// Tell the hypervisor how `gsi` signals (ACPI's encoding: `level` 1 = level-triggered,
/// `active_low` 1 = active low). `EEXIST` when it was set up before.
pub fn physdev_setup_gsi(gsi: u32, level: bool, active_low: bool) -> HcResult {
    let mut op = PhysdevSetupGsi {
        gsi: gsi as i32,
        triggering: level.into(),
        polarity: active_low.into(),
        _pad: 0,
    };
    // SAFETY: PHYSDEVOP_setup_gsi only reads this struct.
    unsafe { physdev_op(PHYSDEVOP_SETUP_GSI, &mut op) }
}

/// Map `gsi` to a pirq of `dom` (`pirq`: the number wanted, `None` to let the hypervisor
/// choose); returns the pirq.
pub fn physdev_map_pirq_gsi(dom: DomId, gsi: u32, pirq: Option<u32>) -> Result<u32, Errno> {
    let mut op = PhysdevMapPirq {
        domid: dom,
        kind: MAP_PIRQ_TYPE_GSI,
        index: gsi as i32,
        pirq: pirq.map_or(-1, |p| p as i32),
        ..Default::default()
    };
    // SAFETY: PHYSDEVOP_map_pirq reads and writes only this struct.
    unsafe { physdev_op(PHYSDEVOP_MAP_PIRQ, &mut op) }?;
    Ok(op.pirq as u32)
}

/// Unmap `pirq` of `dom`.
pub fn physdev_unmap_pirq(dom: DomId, pirq: u32) -> HcResult {
    let mut op = PhysdevUnmapPirq { domid: dom, _pad: 0, pirq: pirq as i32 };
    // SAFETY: PHYSDEVOP_unmap_pirq only reads this struct.
    unsafe { physdev_op(PHYSDEVOP_UNMAP_PIRQ, &mut op) }
}

/// End of interrupt for `pirq`: the hypervisor unmasks its line.
pub fn physdev_eoi(pirq: u32) -> HcResult {
    let mut op = PhysdevEoi { irq: pirq };
    // SAFETY: PHYSDEVOP_eoi only reads this struct.
    unsafe { physdev_op(PHYSDEVOP_EOI, &mut op) }
}

/// `XENIRQSTAT_*` flags of `pirq` (whether it needs [`physdev_eoi`]).
pub fn physdev_irq_status_query(pirq: u32) -> Result<u32, Errno> {
    let mut op = PhysdevIrqStatusQuery { irq: pirq, flags: 0 };
    // SAFETY: PHYSDEVOP_irq_status_query reads and writes only this struct.
    unsafe { physdev_op(PHYSDEVOP_IRQ_STATUS_QUERY, &mut op) }?;
    Ok(op.flags)
}

// ---- platform_op ----

/// `platform_op` (dom0 only; settime, microcode, CPU power management, ...): `op` is a
/// `xen_platform_op` as Xen lays it out (`cmd` u32, `interface_version` u32, then the
/// command's 128-byte union), prepared by the caller ([`crate::platform::PlatformOp`] and its
/// `as_mut_bytes` build one). xen-core implements setting the clock, for which
/// [`platform_settime`] is the safe wrapper, and answers `ENOSYS` to every other command.
///
/// # Safety
///
/// `op` must be a valid `xen_platform_op` for its `cmd`, and its effect (e.g. loading
/// microcode) must not break this kernel.
pub unsafe fn platform_op(op: &mut [u8; 136]) -> HcResult {
    // SAFETY: the hypervisor reads and writes the 136 borrowed bytes; the rest is the caller's
    // contract.
    ret_to_result(unsafe { raw::hypercall1(nr::PLATFORM_OP, ptr_of_mut(op)) })
}

/// `XENPF_settime64` (dom0 only): the wall clock reads `secs.nsecs` (Unix time) at system time
/// `system_time` (ns); every domain's shared_info wallclock follows. `EPERM` from a domU.
pub fn platform_settime(secs: u64, nsecs: u32, system_time: u64) -> HcResult {
    use crate::platform::{PlatformOp, Settime64, XENPF_SETTIME64};
    let t = Settime64 { secs, nsecs, mbz: 0, system_time };
    let mut op = PlatformOp::new(XENPF_SETTIME64, &t);
    let bytes: &mut [u8; 136] = op.as_mut_bytes().try_into().expect("xen_platform_op is 136 bytes");
    // SAFETY: a settime64 envelope built from its typed struct; setting the clock touches no
    // memory of this kernel.
    unsafe { platform_op(bytes) }
}
