//! Typed hypercall wrappers for PV guest kernels (feature `guest`), and what a kernel needs
//! around them: the start token, page slots to map shared pages into, and the macros that
//! write the entry point, the hypercall page and the event upcall stub.
//!
//! Each wrapper is a thin layer over [`raw`]: it builds the argument struct, passes pointers to
//! memory it borrows for the duration of the call, and turns rax into an [`HcResult`]. Wrappers
//! whose effect cannot break Rust's guarantees (console output, yielding, binding a port) are
//! safe functions. Those that install entry points, change mappings, let the hypervisor write
//! memory the compiler does not know about, or hand it addresses it will use later are
//! `unsafe fn`, with the condition stated. Every hypercall has a wrapper; the multi-op ones
//! have one per operation the guest side uses (`gnttab_copy`, `populate_physmap`, ...) and a
//! generic `unsafe` one for the rest (`grant_table_op`, `memory_op`, `vcpu_op`, ...).
//!
//! All of them require the kernel to define `hypercall_page` (see [`raw`] and
//! [`hypercall_page!`](crate::hypercall_page!)) and to run in guest kernel mode; on any target
//! but `x86_64-unknown-none` they panic.

pub mod raw;

use crate::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use crate::errno::{Errno, HcResult, ret_to_result};
use crate::multicall::MulticallEntry;
use crate::nr;
use crate::sched::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SchedPoll, SchedShutdown,
    ShutdownReason,
};
use crate::types::{EvtchnPort, GuestHandle};
use crate::version::{
    XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION, XenFeatureInfo, version_decode,
};
use zerocopy::{FromBytes, IntoBytes};

pub use cpu::*;
pub use event::*;
pub use grant::*;
pub use mm::*;
pub use ops::*;
pub use start::*;

mod cpu;
mod event;
mod grant;
mod kit;
mod mm;
mod ops;
mod start;

/// Pointer to a value as the u64 a hypercall argument register carries.
fn ptr_of<T: ?Sized>(v: &T) -> u64 {
    core::ptr::from_ref(v).cast::<u8>() as u64
}

/// Mutable pointer to a value as a hypercall argument.
fn ptr_of_mut<T: ?Sized>(v: &mut T) -> u64 {
    core::ptr::from_mut(v).cast::<u8>() as u64
}

/// A slice length as a hypercall count, refusing lengths the ABI cannot express.
fn count_u32(len: usize) -> Result<u64, Errno> {
    u32::try_from(len).map(u64::from).map_err(|_| Errno::E2BIG)
}

// ---- console_io ----

/// Write bytes to the hypervisor console (`console_io(CONSOLEIO_write)`). The hypervisor copies
/// them out and prints them. dom0 may always write; a domU gets `EPERM` unless the hypervisor
/// allows it (Xen: debug builds only, rate-limited). Returns 0.
pub fn console_io_write(buf: &[u8]) -> HcResult {
    let n = count_u32(buf.len())?;
    // SAFETY: the hypervisor only reads `n` bytes from `buf`, which is borrowed for the call.
    ret_to_result(unsafe {
        raw::hypercall3(nr::CONSOLE_IO, CONSOLEIO_WRITE.into(), n, ptr_of(buf))
    })
}

/// Read pending bytes of hypervisor console input (dom0 only). The hypervisor writes at most
/// `buf.len()` bytes and returns how many.
pub fn console_io_read(buf: &mut [u8]) -> HcResult {
    let n = count_u32(buf.len())?;
    // SAFETY: the hypervisor writes at most `n` bytes into `buf`, borrowed mutably for the call.
    ret_to_result(unsafe {
        raw::hypercall3(nr::CONSOLE_IO, CONSOLEIO_READ.into(), n, ptr_of_mut(buf))
    })
}

// ---- sched_op ----

/// Give up the CPU to another runnable vCPU (`SCHEDOP_yield`).
pub fn sched_yield() -> HcResult {
    // SAFETY: no pointer arguments; yielding has no memory effect.
    ret_to_result(unsafe { raw::hypercall2(nr::SCHED_OP, SCHEDOP_YIELD.into(), 0) })
}

/// Sleep until an event is pending (`SCHEDOP_block`). The hypervisor clears
/// `evtchn_upcall_mask` first and returns at once if an event is already pending, so the usual
/// pattern is: mask events, check for work, then block.
pub fn sched_block() -> HcResult {
    // SAFETY: no pointer arguments; blocking has no memory effect (beyond unmasking events,
    // which the caller asked for).
    ret_to_result(unsafe { raw::hypercall2(nr::SCHED_OP, SCHEDOP_BLOCK.into(), 0) })
}

/// Shut this domain down. Does not return for poweroff, reboot and crash; for
/// [`ShutdownReason::Suspend`] use [`sched_op`] (it needs rdx = start_info MFN).
pub fn sched_shutdown(reason: ShutdownReason) -> HcResult {
    let arg = SchedShutdown::new(reason);
    // SAFETY: the hypervisor reads the 4-byte struct, borrowed for the call.
    ret_to_result(unsafe { raw::hypercall2(nr::SCHED_OP, SCHEDOP_SHUTDOWN.into(), ptr_of(&arg)) })
}

/// Block until one of `ports` is pending or system time reaches `timeout_ns` (absolute; 0 =
/// no timeout) (`SCHEDOP_poll`). Returns 0 either way; check the ports.
pub fn sched_poll(ports: &[EvtchnPort], timeout_ns: u64) -> HcResult {
    let arg = SchedPoll {
        ports: GuestHandle::from_slice(ports),
        nr_ports: count_u32(ports.len())? as u32,
        _pad: 0,
        timeout: timeout_ns,
    };
    // SAFETY: the hypervisor reads `arg` and the `nr_ports` u32 ports it points to, both
    // borrowed for the call.
    ret_to_result(unsafe { raw::hypercall2(nr::SCHED_OP, SCHEDOP_POLL.into(), ptr_of(&arg)) })
}

/// Any scheduler op with a typed argument (e.g. `SCHEDOP_shutdown` for suspend with `rdx`,
/// `SCHEDOP_watchdog`).
///
/// # Safety
///
/// `T` must be the argument struct of `cmd` (the hypervisor reads and writes
/// `size_of` of *that* struct through the pointer), and `extra` must be what `cmd` expects
/// in rdx (0 unless documented otherwise).
pub unsafe fn sched_op<T: IntoBytes + FromBytes>(cmd: u32, arg: &mut T, extra: u64) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; its type matching `cmd` is the caller's
    // contract.
    ret_to_result(unsafe { raw::hypercall3(nr::SCHED_OP, cmd.into(), ptr_of_mut(arg), extra) })
}

// ---- xen_version ----

/// `xen_version` sub-ops that take no argument (`XENVER_version`, `XENVER_pagesize`); others
/// need a buffer and are refused with `EINVAL` here (use the typed helpers).
pub fn xen_version(cmd: u32) -> HcResult {
    if cmd != XENVER_VERSION && cmd != XENVER_PAGESIZE {
        return Err(Errno::EINVAL);
    }
    // SAFETY: these sub-ops take a NULL argument and touch no guest memory.
    ret_to_result(unsafe { raw::hypercall2(nr::XEN_VERSION, cmd.into(), 0) })
}

/// The hypervisor's `(major, minor)` version.
pub fn version() -> Result<(u16, u16), Errno> {
    xen_version(XENVER_VERSION).map(|v| version_decode(v as u32))
}

/// Submap `idx` of the `XENFEAT_*` bitmap: bit `n` is feature `32 * idx + n`.
pub fn get_features(idx: u32) -> Result<u32, Errno> {
    let mut fi = XenFeatureInfo { submap_idx: idx, submap: 0 };
    // SAFETY: the hypervisor reads and writes the 8-byte struct, borrowed mutably for the call.
    ret_to_result(unsafe {
        raw::hypercall2(nr::XEN_VERSION, XENVER_GET_FEATURES.into(), ptr_of_mut(&mut fi))
    })?;
    Ok(fi.submap)
}

/// A `xen_version` sub-op that fills a fixed-size buffer (`XENVER_extraversion` with
/// `[u8; 16]`, `XENVER_capabilities` with `[u8; 1024]`, `XENVER_platform_parameters`, ...).
///
/// # Safety
///
/// `T` must be the buffer type of `cmd`: the hypervisor writes `size_of` of that type.
pub unsafe fn xen_version_into<T: IntoBytes + FromBytes>(cmd: u32, out: &mut T) -> HcResult {
    // SAFETY: `out` is borrowed mutably for the call; its type matching `cmd` is the caller's
    // contract.
    ret_to_result(unsafe { raw::hypercall2(nr::XEN_VERSION, cmd.into(), ptr_of_mut(out)) })
}

/// Enable or disable a VM assist (`vm_assist`, `VMASST_*`).
pub fn vm_assist(cmd: u32, kind: u32) -> HcResult {
    // SAFETY: no pointers; assists change how later guest actions are interpreted, not memory.
    ret_to_result(unsafe { raw::hypercall2(nr::VM_ASSIST, cmd.into(), kind.into()) })
}

/// One-shot timer at absolute system time `deadline_ns` (`set_timer_op`); 0 cancels. Expiry
/// raises `VIRQ_TIMER`.
pub fn set_timer_op(deadline_ns: u64) -> HcResult {
    // SAFETY: no pointers.
    ret_to_result(unsafe { raw::hypercall1(nr::SET_TIMER_OP, deadline_ns) })
}

/// Run a batch of hypercalls (`multicall`); each entry's `result` is written back.
///
/// # Safety
///
/// Every entry must satisfy the safety contract of the hypercall it names.
pub unsafe fn multicall(entries: &mut [MulticallEntry]) -> HcResult {
    let n = count_u32(entries.len())?;
    // SAFETY: the hypervisor reads and writes `n` entries of the borrowed slice; the calls they
    // describe are the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::MULTICALL, ptr_of_mut(entries), n) })
}

#[cfg(all(test, not(all(target_arch = "x86_64", target_os = "none"))))]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "hypercalls exist only inside a PV guest kernel")]
    fn host_build_panics_clearly() {
        let _ = console_io_write(b"hello");
    }

    #[test]
    fn refusals_happen_before_any_hypercall() {
        // These return without reaching the raw layer, so they work on the host.
        assert_eq!(xen_version(crate::version::XENVER_CAPABILITIES), Err(Errno::EINVAL));
        // SAFETY: the table is refused before the hypercall is made (no zero entry).
        let r = unsafe {
            set_trap_table(&[crate::arch::TrapInfo::new(3, 3, false, crate::VAddr(0x1000))])
        };
        assert_eq!(r, Err(Errno::EINVAL));
    }
}
