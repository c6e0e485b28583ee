//! The processor registers emulation reads or changes for a guest: CR0 and CR4 as they are,
//! the debug registers, an MSR read that may fault (through the exception table, like guest
//! copies), the PAT, and `wbinvd`.

use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::Msr;

/// CR0's raw value.
pub fn read_cr0() -> u64 {
    Cr0::read_raw()
}

/// CR4's raw value.
pub fn read_cr4() -> u64 {
    Cr4::read_raw()
}

core::arch::global_asm!(
    r#"
    .section .text.uaccess, "ax"
    /* u64 rdmsr_fixup(u32 msr, u64 *out): 0 on success, 1 if rdmsr faulted. */
    .globl rdmsr_fixup
rdmsr_fixup:
    movl %edi, %ecx
20: rdmsr
    shlq $32, %rdx
    orq %rdx, %rax
    movq %rax, (%rsi)
    xorl %eax, %eax
    ret
21: movl $1, %eax
    ret

    .section .ex_table, "a"
    .balign 8
    .quad 20b, 21b
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn rdmsr_fixup(msr: u32, out: *mut u64) -> u64;
}

/// Reads `msr`, or `None` if this CPU does not have it (the #GP is caught).
pub fn rdmsr_safe(msr: u32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: reading an MSR has no side effect on the MSRs a guest may name here (reads of
    // the few with read side effects, like MCA status, only report); a missing MSR's #GP is
    // caught by the exception-table entry above and reported as 1.
    let r = unsafe { rdmsr_fixup(msr, &mut v) };
    (r == 0).then_some(v)
}

/// Writes back and invalidates the caches (for a domain allowed to ask).
pub fn wbinvd() {
    // SAFETY: flushing caches changes no memory contents the program relies on.
    unsafe { core::arch::asm!("wbinvd", options(nostack)) };
}

/// The PAT this hypervisor programmed.
pub fn read_pat() -> u64 {
    // SAFETY: IA32_PAT exists on every x86_64 CPU; reading it has no effect.
    unsafe { Msr::new(0x277).read() }
}

/// Loads a guest's debug registers: DR0-3 only when `dr7` enables a breakpoint.
pub fn load_debug(dr: &[u64; 4], dr7: u64, active: bool) {
    // SAFETY: the addresses were checked to be guest addresses and DR7 to have GD clear and
    // no I/O breakpoints; a breakpoint only raises #DB, which the entry code reflects to the
    // guest (from the guest) or ignores (in the hypervisor, see `clear_dr6`).
    unsafe {
        if active {
            core::arch::asm!("mov dr0, {}", in(reg) dr[0], options(nostack));
            core::arch::asm!("mov dr1, {}", in(reg) dr[1], options(nostack));
            core::arch::asm!("mov dr2, {}", in(reg) dr[2], options(nostack));
            core::arch::asm!("mov dr3, {}", in(reg) dr[3], options(nostack));
        }
        core::arch::asm!("mov dr7, {}", in(reg) dr7, options(nostack));
    }
}

/// Reads DR6 and resets it, after a #DB.
pub fn take_dr6() -> u64 {
    let v: u64;
    // SAFETY: DR6 holds status only; resetting it to its default is what the CPU expects
    // software to do after a #DB.
    unsafe {
        core::arch::asm!("mov {}, dr6", out(reg) v, options(nostack));
        core::arch::asm!("mov dr6, {}", in(reg) 0xFFFF_0FF0u64, options(nostack));
    }
    v
}
