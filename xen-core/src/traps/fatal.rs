//! Faults in hypervisor context that no fixup covers, and panics: everything useful about
//! the fault (registers, faulting address, a stack trace) goes to the log without taking its
//! lock, and the machine stops with the failure status.

use log::error;

use crate::arch::entry::GuestRegs;
use crate::arch::{boot, cpu, paging, power};
use crate::console::logging;

/// The exception's mnemonic (`#GP`), for log lines.
pub fn name(vector: u64) -> &'static str {
    const NAMES: [&str; 21] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "-", "#TS", "#NP", "#SS",
        "#GP", "#PF", "-", "#MF", "#AC", "#MC", "#XM", "#VE",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("?")
}

/// Prints everything useful about a fault in hypervisor context and stops the machine.
pub fn fatal(regs: &GuestRegs) -> ! {
    logging::enter_panic_mode();
    error!(
        "FATAL: hypervisor fault: vector {} ({}) error code {:#x}",
        regs.vector,
        name(regs.vector),
        regs.error_code
    );
    error!(
        "rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
        regs.rip, regs.cs, regs.rflags, regs.rsp, regs.ss
    );
    error!("cr2 {:#018x} cr3 {:#018x}", cpu::read_cr2(), paging::current_cr3());
    error!(
        "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
        regs.rax, regs.rbx, regs.rcx, regs.rdx
    );
    error!(
        "rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}",
        regs.rsi, regs.rdi, regs.rbp, regs.r8
    );
    error!(
        "r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}",
        regs.r9, regs.r10, regs.r11, regs.r12
    );
    error!("r13 {:#018x} r14 {:#018x} r15 {:#018x}", regs.r13, regs.r14, regs.r15);
    stack_trace(regs.rip, regs.rbp);
    power::exit(power::ExitCode::HypervisorFailure)
}

/// Walks the frame-pointer chain (the image is built with frame pointers) and prints return
/// addresses; `addr2line -e target/images/xen-core.elf <addr>` names them.
pub fn stack_trace(rip: u64, mut rbp: u64) {
    error!("stack trace (addr2line -e target/images/xen-core.elf):");
    error!("  {rip:#018x}");
    let (lo, hi) = boot::hypervisor_stack_bounds();
    for _ in 0..32 {
        if rbp < lo || rbp + 16 > hi || !rbp.is_multiple_of(8) {
            break;
        }
        let (next, ret) = boot::read_stack_pair(rbp);
        if ret == 0 {
            break;
        }
        error!("  {ret:#018x}");
        rbp = next;
    }
}
