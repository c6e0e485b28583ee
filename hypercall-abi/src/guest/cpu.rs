//! Wrappers for the CPU-state hypercalls: the virtual IDT, callbacks (and the safe
//! registration of an event entry made by [`event_upcall!`](crate::event_upcall)), the kernel
//! stack, segment bases, the GDT and descriptors, debug registers, lazy FPU switching and the
//! legacy NMI callback.

use super::{ptr_of, raw};
use crate::arch::TrapInfo;
use crate::callback::{CALLBACKOP_REGISTER, CALLBACKTYPE_EVENT, CallbackRegister};
use crate::errno::{Errno, HcResult, ret_to_result};
use crate::nr;
use crate::types::{Mfn, PAddr, VAddr};

/// Install the virtual IDT (`set_trap_table`). The table must end with an entry whose
/// `address` is 0; a table without one is refused (`EINVAL`) before calling, since the
/// hypervisor would read past the slice. The hypervisor copies the table; it is not kept.
///
/// # Safety
///
/// Every non-zero `address` must be a handler that follows the bounce-frame convention
/// (starts with `pop rcx; pop r11`, returns through `iret`).
pub unsafe fn set_trap_table(table: &[TrapInfo]) -> HcResult {
    if !table.iter().any(|t| t.address.0 == 0) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the hypervisor reads entries up to the first zero `address`, which lies inside
    // the borrowed slice (checked above); handler validity is the caller's contract.
    ret_to_result(unsafe { raw::hypercall1(nr::SET_TRAP_TABLE, ptr_of(table)) })
}

/// Register the event, failsafe and guest-user `syscall` entry points (`set_callbacks`).
///
/// # Safety
///
/// Each address must be an entry point following the bounce-frame convention for its kind.
pub unsafe fn set_callbacks(event: VAddr, failsafe: VAddr, syscall: VAddr) -> HcResult {
    // SAFETY: no pointers are dereferenced by the call itself; entry-point validity is the
    // caller's contract.
    ret_to_result(unsafe { raw::hypercall3(nr::SET_CALLBACKS, event.0, failsafe.0, syscall.0) })
}

/// Register one callback (`callback_op(CALLBACKOP_register)`), e.g. NMI or with
/// `CALLBACKF_mask_events`.
///
/// # Safety
///
/// `cb.address` must be an entry point following the convention of `cb.kind`.
pub unsafe fn callback_register(cb: &CallbackRegister) -> HcResult {
    // SAFETY: the hypervisor reads the 16-byte struct, borrowed for the call; entry-point
    // validity is the caller's contract.
    ret_to_result(unsafe {
        raw::hypercall2(nr::CALLBACK_OP, CALLBACKOP_REGISTER.into(), ptr_of(cb))
    })
}

/// Set the kernel stack the hypervisor switches to when it enters guest-kernel mode from user
/// mode (`stack_switch`; the PV equivalent of TSS.RSP0).
///
/// # Safety
///
/// `rsp` must be the top of a mapped, writable stack reserved for this purpose whenever the
/// vCPU can enter kernel mode from user mode; `ss` is normally `FLAT_KERNEL_SS`.
pub unsafe fn stack_switch(ss: u16, rsp: VAddr) -> HcResult {
    // SAFETY: stack validity is the caller's contract; no memory is read by the call.
    ret_to_result(unsafe { raw::hypercall2(nr::STACK_SWITCH, ss.into(), rsp.0) })
}

/// Set an FS/GS base or the user GS selector (`set_segment_base`, `SEGBASE_*`).
///
/// # Safety
///
/// Changing the kernel GS base (or FS base) must not break code that uses it (e.g. per-CPU
/// data reached through `gs:`).
pub unsafe fn set_segment_base(which: u32, base: u64) -> HcResult {
    // SAFETY: the effect on segment-relative code is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::SET_SEGMENT_BASE, which.into(), base) })
}

/// Set (`true`) or clear the virtual CR0.TS (`fpu_taskswitch`): with it set, the next FPU/SSE
/// instruction raises #NM (vector 7) to the guest, for lazy FPU switching.
pub fn fpu_taskswitch(set: bool) -> HcResult {
    // SAFETY: no pointers; the guest must handle #NM, which is not a memory-safety matter.
    ret_to_result(unsafe { raw::hypercall1(nr::FPU_TASKSWITCH, u64::from(set)) })
}

/// The entry of an event upcall stub made by [`event_upcall!`](crate::event_upcall): an
/// address known to follow the event-callback convention, which is what makes registering it
/// safe ([`register_event_callback`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CallbackEntry(VAddr);

impl CallbackEntry {
    /// Wraps an entry point.
    ///
    /// # Safety
    ///
    /// `addr` must be an event-callback entry: it begins with `pop rcx; pop r11`, preserves
    /// every register of the interrupted code, and returns through the `iret` hypercall.
    #[doc(hidden)]
    #[must_use]
    pub const unsafe fn new_unchecked(addr: VAddr) -> Self {
        CallbackEntry(addr)
    }

    /// The entry's address.
    #[must_use]
    pub const fn addr(self) -> VAddr {
        self.0
    }
}

/// Registers `entry` as the event callback (`callback_op(CALLBACKOP_register,
/// CALLBACKTYPE_event)`). Upcalls then arrive there whenever `evtchn_upcall_pending` is set
/// and `evtchn_upcall_mask` is clear; the hypervisor masks further upcalls while one runs.
pub fn register_event_callback(entry: CallbackEntry) -> HcResult {
    let cb = CallbackRegister::new(CALLBACKTYPE_EVENT, 0, entry.0);
    // SAFETY: `entry` follows the event-callback convention (the contract of `CallbackEntry`).
    unsafe { callback_register(&cb) }
}

/// Loads a new GDT (`set_gdt`): `frames` holds the MFNs of its pages (at most 14), `entries`
/// how many descriptors it has (at most 7168, the first reserved entry). The hypervisor checks
/// every descriptor and keeps the pages read-only while they are a GDT.
///
/// # Safety
///
/// The selectors in use (the kernel's, and any in saved user contexts) must stay valid in the
/// new GDT, and the frames must not be memory Rust code writes through references.
pub unsafe fn set_gdt(frames: &[Mfn], entries: u32) -> HcResult {
    if frames.len() > crate::arch::FIRST_RESERVED_GDT_PAGE as usize {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the hypervisor reads `frames.len()` MFNs from the borrowed slice; the effect on
    // segments and on the frames is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::SET_GDT, ptr_of(frames), entries.into()) })
}

/// Writes one 8-byte descriptor at machine address `maddr` in a GDT or LDT page
/// (`update_descriptor`); the hypervisor refuses descriptors that would grant privilege.
///
/// # Safety
///
/// Code relying on the old descriptor (a loaded selector) must not break.
pub unsafe fn update_descriptor(maddr: PAddr, desc: u64) -> HcResult {
    // SAFETY: no guest memory is passed by pointer; the effect is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::UPDATE_DESCRIPTOR, maddr.0, desc) })
}

/// Sets debug register `reg` (0-3 addresses, 6, 7) to `value` (`set_debugreg`); the
/// hypervisor refuses breakpoints on its own addresses. A hit is a #DB to the guest.
pub fn set_debugreg(reg: u32, value: u64) -> HcResult {
    // SAFETY: no pointers; a breakpoint raises #DB in this guest, not a memory effect.
    ret_to_result(unsafe { raw::hypercall2(nr::SET_DEBUGREG, reg.into(), value) })
}

/// Reads debug register `reg` (`get_debugreg`): the value, not an errno, on success (Xen
/// returns the register in rax, so a value that looks like `-errno` is ambiguous: check `reg`
/// is 0-3, 6 or 7).
pub fn get_debugreg(reg: u32) -> Result<u64, Errno> {
    // SAFETY: no pointers.
    ret_to_result(unsafe { raw::hypercall1(nr::GET_DEBUGREG, reg.into()) })
}

/// `nmi_op` command: register the NMI callback (arg: its address).
pub const XENNMI_REGISTER_CALLBACK: u32 = 0;
/// `nmi_op` command: unregister it (arg NULL).
pub const XENNMI_UNREGISTER_CALLBACK: u32 = 1;

/// Registers an NMI callback through the legacy `nmi_op` (Xen prefers `callback_op` with
/// `CALLBACKTYPE_nmi`, [`callback_register`]).
///
/// # Safety
///
/// `handler` must be an NMI entry following the bounce-frame convention.
pub unsafe fn nmi_op_register(handler: VAddr) -> HcResult {
    // `xennmi_callback`: the handler address and a padding word.
    let arg = [handler.0, 0];
    // SAFETY: the hypervisor reads the 16-byte struct, borrowed for the call; the entry point is
    // the caller's contract.
    ret_to_result(unsafe {
        raw::hypercall2(nr::NMI_OP, XENNMI_REGISTER_CALLBACK.into(), ptr_of(&arg))
    })
}

/// Unregisters the NMI callback (`nmi_op(XENNMI_unregister_callback)`).
pub fn nmi_op_unregister() -> HcResult {
    // SAFETY: NULL argument; removing the callback has no memory effect.
    ret_to_result(unsafe { raw::hypercall2(nr::NMI_OP, XENNMI_UNREGISTER_CALLBACK.into(), 0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_gdt_is_refused_before_the_call() {
        // SAFETY: refused before any hypercall is made.
        let r = unsafe { set_gdt(&[Mfn(1); 15], 8) };
        assert_eq!(r, Err(Errno::EINVAL));
    }
}
