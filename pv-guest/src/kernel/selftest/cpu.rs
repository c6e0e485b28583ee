//! Exceptions and privileged instructions from a guest kernel's side: exceptions reach its
//! handlers through bounce frames and `iret` resumes it; privileged instructions are its own
//! #GP (or #UD); SSE registers survive hypercalls and exceptions; and a fault with no handler
//! crashes this domain alone.

use alloc::string::String;
use core::sync::atomic::Ordering;

use hypercall_abi::guest;
use pv_guest::println;

use super::run::Test::{self, Check, Run};
use super::trap::{SEEN_ERR, expect_trap, resume_hook, trap_vector};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[
    ("exceptions", Check(exceptions)),
    ("fpu", Check(fpu)),
    ("privileged", Check(privileged)),
    ("softint", Check(softint)),
    ("smap-ac", Check(smap_ac)),
    ("fault-nohandler", Run(fault_without_handler)),
];

/// Exceptions reach the kernel's handlers through bounce frames, and `iret` resumes it.
pub fn exceptions() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    expect_trap!(3, "int3");
    expect_trap!(6, "ud2");
    expect_trap!(0, "xor edx, edx\n xor eax, eax\n div eax", out("eax") _, out("edx") _);
    expect_trap!(14, "mov {x}, [{addr}]", addr = in(reg) 0x10_u64, x = out(reg) _);
    if SEEN_ERR.load(Ordering::SeqCst) & 1 != 0 {
        return Err("page fault on an unmapped page reported present".into());
    }
    expect_trap!(13, "cli");
    // int 0x80 at a vector with no DPL-3 handler is a #GP the kernel sees.
    expect_trap!(13, "int 0x80");
    Ok(())
}

/// Sets EFLAGS.AC (any ring may): an alignment-check flag to the guest, "SMAP off" to the
/// hypervisor if it kept it on entry. With AC set: exceptions the hypervisor bounces, a
/// hypercall, and timer interrupts while the kernel spins. The hypervisor logs `EFLAGS.AC
/// set in the hypervisor` if any entry kept it (the system test looks for that line).
pub fn smap_ac() -> Result<(), String> {
    const AC: u64 = 1 << 18;
    fn set_ac() {
        #[allow(unsafe_code)]
        // SAFETY: sets RFLAGS.AC through the stack; alignment checks only apply in ring 3
        // with CR0.AM, and this kernel's accesses are aligned.
        unsafe {
            core::arch::asm!("pushfq", "or qword ptr [rsp], {ac}", "popfq", ac = const AC);
        }
    }
    fn flags() -> u64 {
        let f: u64;
        #[allow(unsafe_code)]
        // SAFETY: reads RFLAGS through the stack.
        unsafe {
            core::arch::asm!("pushfq", "pop {}", out(reg) f);
        }
        f
    }
    pv_guest::traps::set_exception_hook(resume_hook);
    set_ac();
    if flags() & AC == 0 {
        return Err("EFLAGS.AC did not stay set".into());
    }
    expect_trap!(3, "int3");
    set_ac();
    expect_trap!(13, "cli");
    set_ac();
    expect_trap!(14, "mov {x}, [{addr}]", addr = in(reg) 0x10_u64, x = out(reg) _);
    set_ac();
    let _ = guest::xen_version(0);
    set_ac();
    // Spin (no hypercall) across a timer interrupt (the hypervisor's, for the timer set).
    let _ = guest::set_timer_op(pv_guest::time::now_ns() + 5_000_000);
    let end = pv_guest::time::now_ns() + 50_000_000;
    while pv_guest::time::now_ns() < end {
        core::hint::spin_loop();
    }
    let still = flags() & AC != 0;
    #[allow(unsafe_code)]
    // SAFETY: clears RFLAGS.AC through the stack.
    unsafe {
        core::arch::asm!("pushfq", "and qword ptr [rsp], {m}", "popfq", m = const !AC);
    }
    if !still {
        return Err("EFLAGS.AC was lost across interrupts".into());
    }
    Ok(())
}

/// A software interrupt at a vector with no handler is the kernel's #GP, with the error code
/// Xen gives it (printed for comparison with Xen: `tests/tests/parity.rs` checks the lines
/// are the same on both).
pub fn softint() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    let mut codes = alloc::vec::Vec::new();
    let seen = |n: u64, vector: u64| (n, vector, SEEN_ERR.load(Ordering::SeqCst));
    for (n, seen, err) in [
        seen(0x20, trap_vector!("int 0x20")),
        seen(0x41, trap_vector!("int 0x41")),
        seen(0x80, trap_vector!("int 0x80")),
        seen(0xFF, trap_vector!("int 0xff")),
    ] {
        codes.push(alloc::format!("int {n:#x}: vector {} error {err:#x}", seen as i64));
        if seen != 13 {
            return Err(codes.join("; "));
        }
    }
    pv_guest::println!("INFO softint: {}", codes.join("; "));
    Ok(())
}

/// Privileged instructions the hypervisor does not emulate (see `emul`) are the guest's own
/// #GP (or #UD), never the hypervisor's.
pub fn privileged() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    expect_trap!(13, "hlt");
    expect_trap!(13, "mov cr3, {x}", x = in(reg) 0u64);
    expect_trap!(13, "wrmsr", in("ecx") 0xC000_0082u32, in("eax") 0, in("edx") 0);
    expect_trap!(13, "in al, 0x60", out("al") _);
    expect_trap!(13, "lgdt [{x}]", x = in(reg) 0u64);
    expect_trap!(13, "invlpg [{x}]", x = in(reg) 0u64);
    expect_trap!(13, "swapgs");
    Ok(())
}

/// SSE registers survive hypercalls and exceptions.
pub fn fpu() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    let pattern: u64 = 0x0123_4567_89AB_CDEF;
    #[allow(unsafe_code)]
    // SAFETY: loads xmm0/xmm15 (not used by this soft-float kernel's own code).
    unsafe {
        core::arch::asm!("movq xmm0, {p}", "movq xmm15, {q}", p = in(reg) pattern, q = in(reg) !pattern);
    }
    for _ in 0..10 {
        let _ = guest::xen_version(0);
        let _ = guest::console_io_write(b"");
    }
    expect_trap!(3, "int3");
    let (a, b): (u64, u64);
    #[allow(unsafe_code)]
    // SAFETY: reads the registers written above.
    unsafe {
        core::arch::asm!("movq {a}, xmm0", "movq {b}, xmm15", a = out(reg) a, b = out(reg) b);
    }
    if a != pattern || b != !pattern {
        return Err(alloc::format!("xmm0 {a:#x} xmm15 {b:#x}"));
    }
    Ok(())
}

/// Faults with no handler installed: the hypervisor must crash this domain alone.
pub fn fault_without_handler() {
    println!("TEST fault-nohandler: removing the trap table and faulting");
    pv_guest::traps::uninstall();
    #[allow(unsafe_code)]
    // SAFETY: deliberately raises #UD; the hypervisor is expected to crash this domain.
    unsafe {
        core::arch::asm!("ud2");
    }
    println!("TEST fault-nohandler: FAIL still running");
}
