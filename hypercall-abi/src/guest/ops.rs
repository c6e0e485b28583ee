//! Wrappers for the multi-op hypercalls: grant tables, memory, vCPUs and physical devices.
//!
//! The generic `*_op` functions are `unsafe`: the hypervisor interprets the pointer by `cmd`,
//! and several ops map or free memory. The typed helpers cover the ops whose only memory effect
//! is on the struct or slice they borrow.

use super::{count_u32, ptr_of_mut, raw};
use crate::errno::{Errno, HcResult, ret_to_result};
use crate::grant_table::{
    GNTST_OKAY, GNTTABOP_GET_VERSION, GNTTABOP_QUERY_SIZE, GNTTABOP_SET_VERSION,
    GNTTABOP_SETUP_TABLE, GnttabGetVersion, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable,
};
use crate::memory::{
    E820Entry, XENMEM_CURRENT_RESERVATION, XENMEM_MACHPHYS_MAPPING, XENMEM_MAXIMUM_GPFN,
    XENMEM_MAXIMUM_RAM_PAGE, XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XenMachphysMapping,
    XenMemoryMap,
};
use crate::nr;
use crate::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};
use crate::types::{DomId, Mfn};
use crate::vcpu::{
    VCPUOP_GET_RUNSTATE_INFO, VCPUOP_IS_UP, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VcpuRunstateInfo,
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
};
use zerocopy::{FromBytes, IntoBytes};

// ---- grant_table_op ----

/// Any grant-table op on a batch (`grant_table_op(cmd, ops, count)`). Per-element results are
/// in each element's `status`.
///
/// # Safety
///
/// `T` must be the struct of `cmd` (`GNTTABOP_*`), and the ops' effects (mapping at
/// `host_addr`, copying into frames, transferring pages) must not invalidate memory Rust code
/// relies on.
pub unsafe fn grant_table_op<T: IntoBytes + FromBytes>(cmd: u32, ops: &mut [T]) -> HcResult {
    let n = count_u32(ops.len())?;
    // SAFETY: `ops` is borrowed mutably for the call; its type matching `cmd` and the effects
    // are the caller's contract.
    ret_to_result(unsafe { raw::hypercall3(nr::GRANT_TABLE_OP, cmd.into(), ptr_of_mut(ops), n) })
}

/// Turn a grant op's `status` into a result (`GNTST_*` values are not errnos, so any failure is
/// reported as `EINVAL` here; read the struct for the exact status).
fn gntst(status: i16) -> Result<(), Errno> {
    if status == GNTST_OKAY { Ok(()) } else { Err(Errno::EINVAL) }
}

/// Current and maximum number of grant-table frames of `dom`.
pub fn gnttab_query_size(dom: DomId) -> Result<GnttabQuerySize, Errno> {
    let mut op = [GnttabQuerySize { dom, ..Default::default() }];
    // SAFETY: `op` is the struct of GNTTABOP_query_size, which only writes into it.
    unsafe { grant_table_op(GNTTABOP_QUERY_SIZE, &mut op) }?;
    gntst(op[0].status)?;
    Ok(op[0])
}

/// Grow `dom`'s grant table to `frames.len()` frames and get their MFNs (map them to write
/// grant entries).
pub fn gnttab_setup_table(dom: DomId, frames: &mut [Mfn]) -> Result<(), Errno> {
    let mut op = [GnttabSetupTable {
        dom,
        nr_frames: count_u32(frames.len())? as u32,
        frame_list: ptr_of_mut(frames),
        ..Default::default()
    }];
    // SAFETY: GNTTABOP_setup_table reads `op` and writes at most `nr_frames` u64 MFNs into the
    // borrowed `frames` slice (`Mfn` is a transparent u64).
    unsafe { grant_table_op(GNTTABOP_SETUP_TABLE, &mut op) }?;
    gntst(op[0].status)
}

/// Select grant-table `version` (we support only 1); returns the version in force.
pub fn gnttab_set_version(version: u32) -> Result<u32, Errno> {
    let mut op = [GnttabSetVersion { version }];
    // SAFETY: `op` is the struct of GNTTABOP_set_version.
    unsafe { grant_table_op(GNTTABOP_SET_VERSION, &mut op) }?;
    Ok(op[0].version)
}

/// Grant-table version of `dom`.
pub fn gnttab_get_version(dom: DomId) -> Result<u32, Errno> {
    let mut op = [GnttabGetVersion { dom, ..Default::default() }];
    // SAFETY: `op` is the struct of GNTTABOP_get_version.
    unsafe { grant_table_op(GNTTABOP_GET_VERSION, &mut op) }?;
    Ok(op[0].version)
}

// ---- memory_op ----

/// Any memory op (`memory_op(cmd, arg)`).
///
/// # Safety
///
/// `T` must be the argument of `cmd` (`XENMEM_*`), any guest handles inside it must point to
/// buffers valid for the call, and the op's effect (freeing or remapping frames) must not
/// invalidate memory Rust code relies on.
pub unsafe fn memory_op<T: IntoBytes + FromBytes>(cmd: u32, arg: &mut T) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; the rest is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::MEMORY_OP, cmd.into(), ptr_of_mut(arg)) })
}

/// This domain's pseudo-physical memory map: fills `buf` and returns the entries written.
pub fn memory_map(buf: &mut [E820Entry]) -> Result<usize, Errno> {
    let mut map =
        XenMemoryMap { nr_entries: count_u32(buf.len())? as u32, buffer: ptr_of_mut(buf), _pad: 0 };
    // SAFETY: XENMEM_memory_map writes at most `nr_entries` 20-byte entries into the borrowed
    // `buf` and updates `map`.
    unsafe { memory_op(XENMEM_MEMORY_MAP, &mut map) }?;
    Ok((map.nr_entries as usize).min(buf.len()))
}

/// Where the read-only M2P table is mapped and how large it is.
pub fn machphys_mapping() -> Result<XenMachphysMapping, Errno> {
    let mut m = XenMachphysMapping::default();
    // SAFETY: XENMEM_machphys_mapping only writes this struct.
    unsafe { memory_op(XENMEM_MACHPHYS_MAPPING, &mut m) }?;
    Ok(m)
}

fn memory_op_domid(cmd: u32, dom: DomId) -> HcResult {
    let mut d = dom;
    // SAFETY: these ops read a single `domid_t` (`DomId` is a transparent u16).
    unsafe { memory_op(cmd, &mut d) }
}

/// Pages currently allocated to `dom`.
pub fn current_reservation(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_CURRENT_RESERVATION, dom)
}

/// Maximum pages `dom` may have.
pub fn maximum_reservation(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_MAXIMUM_RESERVATION, dom)
}

/// Highest GPFN `dom` uses.
pub fn maximum_gpfn(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_MAXIMUM_GPFN, dom)
}

/// Highest machine frame of RAM in the host.
pub fn maximum_ram_page() -> HcResult {
    // SAFETY: XENMEM_maximum_ram_page takes a NULL argument and touches no guest memory.
    ret_to_result(unsafe { raw::hypercall2(nr::MEMORY_OP, XENMEM_MAXIMUM_RAM_PAGE.into(), 0) })
}

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
