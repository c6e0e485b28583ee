//! The kernel's exception and event handling: the virtual trap table registered with the
//! hypervisor, and the Rust side of every callback. A kernel may install a hook to handle
//! (and resume from) an exception; otherwise an exception is fatal and the domain crashes
//! through `SCHEDOP_shutdown(crash)`.

use core::sync::atomic::{AtomicUsize, Ordering};

use hypercall_abi::arch::TrapInfo;
use hypercall_abi::guest;

use crate::arch::{self, EVENT_VECTOR, FAILSAFE_VECTOR, TrapFrame};

/// A kernel's exception hook: returns true when it handled the exception (and adjusted the
/// frame to resume), false to fall through to the fatal path.
pub type ExceptionHook = fn(&mut TrapFrame) -> bool;
/// The event upcall handler.
pub type EventHook = fn(&mut TrapFrame);

static EXCEPTION_HOOK: AtomicUsize = AtomicUsize::new(0);
static EVENT_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Sets the exception hook.
pub fn set_exception_hook(h: ExceptionHook) {
    EXCEPTION_HOOK.store(h as usize, Ordering::Release);
}

/// Sets the event upcall handler.
pub fn set_event_hook(h: EventHook) {
    EVENT_HOOK.store(h as usize, Ordering::Release);
}

fn hook<T: Copy>(slot: &AtomicUsize) -> Option<T> {
    let p = slot.load(Ordering::Acquire);
    if p == 0 {
        return None;
    }
    // The slots only ever hold function pointers of type T stored by the setters above.
    // SAFETY-free conversion: transmute_copy on a usize the setters wrote from a T.
    Some(unsafe_free_fn_cast::<T>(p))
}

#[allow(unsafe_code)]
fn unsafe_free_fn_cast<T: Copy>(p: usize) -> T {
    debug_assert_eq!(core::mem::size_of::<T>(), core::mem::size_of::<usize>());
    // SAFETY: `p` was produced by casting a `T` (a fn pointer, pointer-sized) to usize in
    // `set_exception_hook`/`set_event_hook`; converting back yields the same pointer.
    unsafe { core::mem::transmute_copy::<usize, T>(&p) }
}

/// Registers the trap table (vectors 0-20, DPL 3 for int3/into) and the event and failsafe
/// callbacks. The event callback is entered with events masked.
pub fn install() {
    let stubs = arch::exception_stubs();
    let mut table = [TrapInfo::END; 22];
    for (v, &addr) in stubs.iter().enumerate() {
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        table[v] = TrapInfo::new(v as u8, dpl, false, hypercall_abi::VAddr(addr));
    }
    #[allow(unsafe_code)]
    // SAFETY: the entries point at this kernel's callback stubs, which stay mapped and follow
    // the bounce-frame protocol; the table ends with a zero entry.
    let r = unsafe { guest::set_trap_table(&table) };
    assert!(r.is_ok(), "set_trap_table failed: {r:?}");
    #[allow(unsafe_code)]
    // SAFETY: the callbacks point at this kernel's stubs, as above.
    let r = unsafe {
        guest::set_callbacks(
            hypercall_abi::VAddr(arch::event_entry()),
            hypercall_abi::VAddr(arch::failsafe_entry()),
            hypercall_abi::VAddr(0),
        )
    };
    assert!(r.is_ok(), "set_callbacks failed: {r:?}");
}

/// Removes every handler (used by tests of the hypervisor's no-handler path). As on Xen, only
/// a NULL table clears the whole table; a table with entries changes just those vectors.
pub fn uninstall() {
    #[allow(unsafe_code)]
    // SAFETY: a NULL table argument is the documented way to clear all handlers.
    let _ = unsafe { guest::raw::hypercall1(hypercall_abi::nr::SET_TRAP_TABLE, 0) };
}

/// Every callback lands here.
pub fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        EVENT_VECTOR => {
            if let Some(h) = hook::<EventHook>(&EVENT_HOOK) {
                h(frame);
            }
        }
        FAILSAFE_VECTOR => fatal(frame, "failsafe callback"),
        _ => {
            if let Some(h) = hook::<ExceptionHook>(&EXCEPTION_HOOK)
                && h(frame)
            {
                return;
            }
            fatal(frame, "unhandled exception");
        }
    }
}

fn fatal(frame: &TrapFrame, what: &str) -> ! {
    crate::println!(
        "guest: {what}: vector {} error {:#x} at rip {:#x} rsp {:#x}",
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rsp
    );
    crate::boot::shutdown(hypercall_abi::sched::SHUTDOWN_CRASH)
}
