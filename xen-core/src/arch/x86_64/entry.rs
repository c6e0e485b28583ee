//! Every way into and out of the hypervisor: the 256 IDT stubs, the `syscall` entry, and the
//! one exit path. All of them build the same [`GuestRegs`] frame at the top of the per-CPU
//! stack, call into Rust with a pointer to it, and leave through `restore_all` with `iretq`,
//! or, after a plain hypercall, with `sysretq`.
//!
//! Rules this code keeps (each one bit somebody):
//! - `swapgs` exactly once per ring-3 transition: entry checks the saved CS (interrupt gates) or
//!   knows it came from ring 3 (`syscall`); exit checks the CS it returns to.
//! - `syscall` leaves rsp as the guest's: nothing is pushed until rsp is the hypervisor stack,
//!   and IF is masked by `IA32_FMASK`, so no interrupt can arrive on the guest stack.
//! - `sysretq` only back to the instruction after the guest's own `syscall` (rcx = rip,
//!   r11 = rflags, 64-bit code) and only to a canonical rip, checked before: a non-canonical
//!   rip would fault in ring 0 on a guest stack (CVE-2012-0217). Everything else is `iretq`.
//! - The frame is 176 bytes, so with a 16-aligned stack top the Rust handlers get the 16-byte
//!   alignment the ABI wants at every `call`.

use core::mem::{offset_of, size_of};
use core::sync::atomic::AtomicBool;

use hypercall_abi::nr::XEN_CORE_FLOOR_PROBE;

use super::percpu::{PERCPU_SCRATCH_RSP, PERCPU_STACK_TOP};

/// Saved guest (or interrupted hypervisor) state, laid out as the entry code pushes it.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GuestRegs {
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
    /// IDT vector, or [`SYSCALL_VECTOR`] for a `syscall`.
    pub vector: u64,
    /// The CPU's error code, or 0 where the exception has none.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// With `floor_probe` on the command line, a `syscall` with rax = [`XEN_CORE_FLOOR_PROBE`]
/// returns at once (sysret), so a guest can measure the cost of the transition alone: the
/// floor under every hypercall. Off by default: the entry cannot tell a guest's kernel from its
/// user space before `swapgs`, and a user process's syscall with that number must reach its
/// kernel.
pub static FLOOR_PROBE: AtomicBool = AtomicBool::new(false);

/// Marks a frame built by the `syscall` entry.
pub const SYSCALL_VECTOR: u64 = 0x100;
/// Distance between IDT stubs; the IDT points at `stubs + vector * STUB_STRIDE`.
pub const STUB_STRIDE: u64 = 16;
pub const FRAME_SIZE: usize = size_of::<GuestRegs>();
static_assertions::const_assert_eq!(FRAME_SIZE, 176);
static_assertions::const_assert_eq!(FRAME_SIZE % 16, 0);
static_assertions::const_assert_eq!(offset_of!(GuestRegs, vector), 120);
static_assertions::const_assert_eq!(offset_of!(GuestRegs, cs), 144);

impl GuestRegs {
    /// Whether the frame was taken in ring 3 (a guest), not in the hypervisor.
    pub fn is_from_guest(&self) -> bool {
        self.cs & 3 == 3
    }
}

core::arch::global_asm!(
    r#"
    /* The general registers in GuestRegs order (r15 at the lowest address). */
    .macro PUSH_GPRS
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rax
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    .endm
    .macro POP_GPRS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rax
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    .endm

    .section .text.entry, "ax"
    .balign 16
    .globl idt_stubs
idt_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp trap_common
    .set vec, vec + 1
    .endr

trap_common:
    testb $3, {cs_off_before_regs}(%rsp)
    jz 1f
    swapgs
1:  PUSH_GPRS
    cld
    /* An interrupt gate does not clear EFLAGS.AC, and a guest may run with it set: with AC
       set, SMAP no longer stops the hypervisor touching guest pages by mistake. Cleared first
       thing (`clac` exists only where SMAP does; without SMAP, AC has no such effect). The
       interrupted context's own AC comes back with its flags at iretq. */
    cmpb $0, {smap_on}(%rip)
    je 2f
    clac
2:  movq %rsp, %rdi
    call hv_trap
    jmp restore_all

    .balign 16
    .globl syscall_entry
syscall_entry:
    /* The floor probe, when enabled: rax = -42 (no hypercall-page stub can make it, they load
       eax) returns at once, measuring syscall + sysret and nothing else. sysret only to a
       canonical rip (CVE-2012-0217); anything else takes the normal path, which crashes the
       guest. */
    cmpq ${floor_probe}, %rax
    jne 1f
    cmpb $0, {floor_enabled}(%rip)
    je 1f
    movq %rcx, %rax
    shlq $16, %rax
    sarq $16, %rax
    cmpq %rcx, %rax
    jne 2f
    xorl %eax, %eax
    sysretq
2:  movq ${floor_probe}, %rax
1:  swapgs
    movq %rsp, %gs:{scratch}
    movq %gs:{stack_top}, %rsp
    pushq ${guest_ss}
    pushq %gs:{scratch}
    pushq %r11
    pushq ${guest_cs}
    pushq %rcx
    pushq $0
    pushq ${syscall_vector}
    PUSH_GPRS
    cld
    movq %rsp, %rdi
    call hv_syscall

    /* Back from a hypercall: if the frame still says "return after the syscall" (rcx = rip,
       r11 = rflags, 64-bit guest code), leave with sysretq, which is much cheaper than iretq,
       above all under an emulator. exit_to_guest has checked rip is a guest address, so
       sysret cannot fault in ring 0 (CVE-2012-0217). Anything else (another vCPU's interrupt
       frame after a switch, an event or iret that moved rip) takes the iretq path. */
    cmpq ${syscall_vector}, {vector_off}(%rsp)
    jne restore_all
    movq {rcx_off}(%rsp), %rcx
    cmpq %rcx, {rip_off}(%rsp)
    jne restore_all
    movq {r11_off}(%rsp), %r11
    cmpq %r11, {rflags_off}(%rsp)
    jne restore_all
    cmpq ${guest_cs}, {cs_off}(%rsp)
    jne restore_all
    POP_GPRS
    movq {rsp_from_vector}(%rsp), %rsp
    swapgs
    sysretq

    /* Leaves through the frame at rsp: interrupts are off here and stay off until iretq. */
    .globl restore_all
restore_all:
    POP_GPRS
    addq $16, %rsp
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:  iretq

    /* enter_frame(src, stack_top): copy the frame at src to the top of the stack (only
       registers are used from here on, the old call chain is dead) and leave through it. */
    .globl enter_frame
enter_frame:
    leaq -{frame_size}(%rsi), %r8
    movq %rdi, %rsi
    movq %r8, %rdi
    movl ${frame_size}, %ecx
    rep movsb
    movq %r8, %rsp
    jmp restore_all
"#,
    cs_off_before_regs = const offset_of!(GuestRegs, cs) - offset_of!(GuestRegs, vector),
    rsp_from_vector = const offset_of!(GuestRegs, rsp) - offset_of!(GuestRegs, vector),
    scratch = const PERCPU_SCRATCH_RSP,
    stack_top = const PERCPU_STACK_TOP,
    guest_cs = const super::cpu::GUEST_CS64,
    guest_ss = const super::cpu::GUEST_DS,
    syscall_vector = const SYSCALL_VECTOR,
    frame_size = const FRAME_SIZE,
    smap_on = sym super::uaccess::SMAP_ON,
    floor_probe = const XEN_CORE_FLOOR_PROBE,
    floor_enabled = sym FLOOR_PROBE,
    vector_off = const offset_of!(GuestRegs, vector),
    rcx_off = const offset_of!(GuestRegs, rcx),
    r11_off = const offset_of!(GuestRegs, r11),
    rip_off = const offset_of!(GuestRegs, rip),
    cs_off = const offset_of!(GuestRegs, cs),
    rflags_off = const offset_of!(GuestRegs, rflags),

    options(att_syntax)
);

unsafe extern "C" {
    static idt_stubs: u8;
    fn syscall_entry();
    fn enter_frame(src: *const GuestRegs, stack_top: u64) -> !;
}

/// Address of the first IDT stub.
pub fn idt_stubs_addr() -> u64 {
    core::ptr::addr_of!(idt_stubs) as u64
}

/// Address of the `syscall` entry, for `LSTAR`.
pub fn syscall_entry_addr() -> u64 {
    syscall_entry as *const () as u64
}

/// Starts running `regs` (a guest context) on this CPU's hypervisor stack, abandoning the
/// current call chain. Used once per CPU to enter the first guest. `regs` must not live on
/// that stack (it is copied over the stack's top).
pub fn start_guest(stack_top: u64, stack_size: u64, regs: &GuestRegs) -> ! {
    let src = regs as *const GuestRegs as u64;
    assert!(src + FRAME_SIZE as u64 <= stack_top - stack_size || src >= stack_top);
    // SAFETY: `stack_top` is this CPU's 16-aligned hypervisor stack top; the copy overwrites
    // only the dead top of the current call chain (nothing returns into it), and the source
    // lies outside the stack (checked above), so the copy does not overlap itself.
    unsafe { enter_frame(regs, stack_top) }
}

/// Defines the three Rust functions the assembly above calls, each handing over to the generic
/// code the image names: `start` (boot, given the multiboot information's address), `trap`
/// (every IDT stub) and `syscall`. The binary invokes it once, so arch never names the layers
/// above it and each symbol is defined exactly once in the image.
#[macro_export]
macro_rules! entry_points {
    (start: $start:path, trap: $trap:path, syscall: $syscall:path $(,)?) => {
        /// Rust entry from the boot assembly.
        // SAFETY: `no_mangle` on a name nothing else in the image defines; the assembly calls
        // it with the C ABI and these arguments.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn rust_start(magic: u32, mbi: u32) -> ! {
            let _ = magic; // checked by the 32-bit entry
            $start(u64::from(mbi))
        }

        /// Rust side of every IDT stub.
        // SAFETY: as for `rust_start`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn hv_trap(regs: &mut $crate::arch::entry::GuestRegs) {
            $trap(regs)
        }

        /// Rust side of the `syscall` entry.
        // SAFETY: as for `rust_start`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn hv_syscall(regs: &mut $crate::arch::entry::GuestRegs) {
            $syscall(regs)
        }
    };
}
