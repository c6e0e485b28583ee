//! The guest's lowest level: Xen ELF notes, the entry point, the hypercall page, and the
//! assembly halves of the exception, event and failsafe callbacks. The only module of the
//! runtime allowed `unsafe` besides `shared` (memory shared with the hypervisor).
//!
//! Callbacks arrive on a Xen bounce frame (`rcx, r11, [error], rip, cs, rflags, rsp, ss`).
//! The stubs pop rcx/r11, normalise the frame to always carry an error code and a vector,
//! save every register into a [`TrapFrame`] and call Rust; they return through the `iret`
//! hypercall (stub 23), which also restores the event mask the frame recorded.

use core::mem::{offset_of, size_of};

/// Start of the kernel's virtual address space (the builder maps pfn 0 here).
pub const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;
/// Vector number the event callback reports.
pub const EVENT_VECTOR: u64 = 0x100;
/// Vector number the failsafe callback reports.
pub const FAILSAFE_VECTOR: u64 = 0x101;
/// Size of the guest's own boot stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// Registers as the callback stubs save them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    /// Saved upcall mask in bits 32-39; RPL 0 when interrupted in kernel mode.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
static_assertions::const_assert_eq!(size_of::<TrapFrame>(), 176);
static_assertions::const_assert_eq!(offset_of!(TrapFrame, vector), 120);

/// XENFEAT_dom0: this kernel can run as the initial domain (real Xen checks it).
const SUPPORTED_FEATURES: u32 = 1 << 11;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .balign 4
    .macro NOTE_HEAD type
    .long 4
    .long 2f - 1f
    .long \type
    .asciz "Xen"
    .balign 4
    .endm
    .macro NOTE_STR type, text
    NOTE_HEAD \type
1:  .asciz "\text"
2:  .balign 4
    .endm
    .macro NOTE_QUAD type, value
    NOTE_HEAD \type
1:  .quad \value
2:  .balign 4
    .endm
    NOTE_STR 5, xen-3.0
    NOTE_STR 8, generic
    NOTE_STR 6, xen-core-pv
    NOTE_STR 7, 0.1
    NOTE_STR 9, yes
    NOTE_QUAD 3, {virt_base}
    NOTE_QUAD 4, {virt_base}
    NOTE_QUAD 1, _start
    NOTE_QUAD 2, hypercall_page
    NOTE_HEAD 17
1:  .long {features}
2:  .balign 4

    .section .text.start, "ax"
    .globl _start
_start:
    cld
    lea rsp, [rip + boot_stack + {stack_size}]
    xor ebp, ebp
    mov rdi, rsi
    call pv_guest_start
2:  hlt
    jmp 2b

    .section .text.hypercall_page, "ax"
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc

    .section .text.callbacks, "ax"
    .macro EXC_STUB n, err
    .globl exc_stub_\n
exc_stub_\n:
    pop rcx
    pop r11
    .if \err == 0
    push 0
    .endif
    push \n
    jmp callback_common
    .endm

    EXC_STUB 0, 0
    EXC_STUB 1, 0
    EXC_STUB 2, 0
    EXC_STUB 3, 0
    EXC_STUB 4, 0
    EXC_STUB 5, 0
    EXC_STUB 6, 0
    EXC_STUB 7, 0
    EXC_STUB 8, 1
    EXC_STUB 9, 0
    EXC_STUB 10, 1
    EXC_STUB 11, 1
    EXC_STUB 12, 1
    EXC_STUB 13, 1
    EXC_STUB 14, 1
    EXC_STUB 15, 0
    EXC_STUB 16, 0
    EXC_STUB 17, 1
    EXC_STUB 18, 0
    EXC_STUB 19, 0
    EXC_STUB 20, 0
    EXC_STUB 256, 0
    .globl event_stub
event_stub = exc_stub_256

    .globl failsafe_stub
failsafe_stub:
    pop rcx
    pop r11
    add rsp, 32
    push 0
    push {failsafe}
    jmp callback_common

callback_common:
    push rdi
    push rsi
    push rdx
    push rcx
    push rax
    push r8
    push r9
    push r10
    push r11
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call pv_guest_callback
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rax
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    add rsp, 16
    push 0
    jmp hypercall_page + 23 * 32

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip {stack_size}
"#,
    virt_base = const VIRT_BASE,
    features = const SUPPORTED_FEATURES,
    stack_size = const STACK_SIZE,
    failsafe = const FAILSAFE_VECTOR,
);

unsafe extern "C" {
    fn exc_stub_0();
    fn exc_stub_1();
    fn exc_stub_2();
    fn exc_stub_3();
    fn exc_stub_4();
    fn exc_stub_5();
    fn exc_stub_6();
    fn exc_stub_7();
    fn exc_stub_8();
    fn exc_stub_9();
    fn exc_stub_10();
    fn exc_stub_11();
    fn exc_stub_12();
    fn exc_stub_13();
    fn exc_stub_14();
    fn exc_stub_15();
    fn exc_stub_16();
    fn exc_stub_17();
    fn exc_stub_18();
    fn exc_stub_19();
    fn exc_stub_20();
    fn event_stub();
    fn failsafe_stub();
}

/// Entry addresses of the exception stubs, by vector (0-20).
pub fn exception_stubs() -> [u64; 21] {
    [
        exc_stub_0 as *const () as u64,
        exc_stub_1 as *const () as u64,
        exc_stub_2 as *const () as u64,
        exc_stub_3 as *const () as u64,
        exc_stub_4 as *const () as u64,
        exc_stub_5 as *const () as u64,
        exc_stub_6 as *const () as u64,
        exc_stub_7 as *const () as u64,
        exc_stub_8 as *const () as u64,
        exc_stub_9 as *const () as u64,
        exc_stub_10 as *const () as u64,
        exc_stub_11 as *const () as u64,
        exc_stub_12 as *const () as u64,
        exc_stub_13 as *const () as u64,
        exc_stub_14 as *const () as u64,
        exc_stub_15 as *const () as u64,
        exc_stub_16 as *const () as u64,
        exc_stub_17 as *const () as u64,
        exc_stub_18 as *const () as u64,
        exc_stub_19 as *const () as u64,
        exc_stub_20 as *const () as u64,
    ]
}

/// Entry of the event (upcall) callback.
pub fn event_entry() -> u64 {
    event_stub as *const () as u64
}

/// Entry of the failsafe callback.
pub fn failsafe_entry() -> u64 {
    failsafe_stub as *const () as u64
}

/// Rust entry from `_start`, with the start_info pointer the hypervisor put in rsi.
#[unsafe(no_mangle)]
extern "C" fn pv_guest_start(start_info: u64) -> ! {
    crate::boot::start(start_info)
}

/// Rust side of every callback stub.
#[unsafe(no_mangle)]
extern "C" fn pv_guest_callback(frame: &mut TrapFrame) {
    crate::traps::dispatch(frame)
}

/// Reads the current stack pointer (diagnostics).
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    rsp
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed in ring 3 (CR4.TSD is clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}
