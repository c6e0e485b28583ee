//! First instructions: the multiboot1 header QEMU (or GRUB) finds, the 32-bit entry it jumps
//! to, and the switch to long mode on throw-away page tables that map the first GiB twice:
//! identity (so the instruction after `mov cr0` still runs) and at the image's link address in
//! Xen's `XEN_VIRT_START` area. `paging` replaces these tables with the real ones at once.
//!
//! The image is linked high and loaded low (see `link.ld`), so 32-bit code names every symbol as
//! `sym - VOFF`: a physical address the linker checks fits in 32 bits.

use super::layout::{BOOT_STACK_SIZE, VOFF};

/// Multiboot1 flags: page-align modules (0), memory info (1), a.out kludge addresses (16).
/// Bit 16 is what lets QEMU accept an ELF64 file: it then copies the file raw.
const MB_FLAGS: u32 = (1 << 0) | (1 << 1) | (1 << 16);
const MB_MAGIC: u32 = 0x1BAD_B002;
/// What a multiboot1 loader leaves in eax.
const MB_BOOT_MAGIC: u32 = 0x2BAD_B002;

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
mb_header:
    .long {mb_magic}
    .long {mb_flags}
    .long -({mb_magic} + {mb_flags})
    .long mb_header - {voff}
    .long __image_start - {voff}
    .long __data_end - {voff}
    .long __bss_end - {voff}
    .long start32 - {voff}

    .section .text.boot32, "ax"
    .code32
    .globl start32
start32:
    cli
    cld
    movl %ebx, %ebp                     /* multiboot info (physical) */
    movl $(msg_magic - {voff}), %esi
    cmpl ${mb_boot_magic}, %eax
    jne early_die32

    /* Long mode, NX and 1 GiB-capable CPUID leaves are required. */
    movl $(msg_nolm - {voff}), %esi
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb early_die32
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx                       /* LM */
    jnc early_die32
    btl $20, %edx                       /* NX */
    jnc early_die32

    /* One page directory of 2 MiB pages for physical 0..1 GiB, hooked at VA 0 and at VOFF. */
    movl $(boot_pd - {voff}), %edi
    movl $0x83, %eax                    /* present | writable | 2 MiB */
    movl $512, %ecx
1:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b
    movl $(boot_pd - {voff} + 3), %eax
    movl %eax, (boot_pdpt_low - {voff})
    movl %eax, (boot_pdpt_high - {voff} + {voff_l3} * 8)
    movl $(boot_pdpt_low - {voff} + 3), %eax
    movl %eax, (boot_pml4 - {voff})
    movl $(boot_pdpt_high - {voff} + 3), %eax
    movl %eax, (boot_pml4 - {voff} + {voff_l4} * 8)

    movl %cr4, %eax
    orl $0x20, %eax                     /* PAE */
    movl %eax, %cr4
    movl $(boot_pml4 - {voff}), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx              /* EFER: LME | NXE | SCE */
    rdmsr
    orl $0x901, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax               /* PG | WP | PE */
    movl %eax, %cr0
    lgdt (boot_gdt_ptr - {voff})
    ljmp $0x08, $(start64_low - {voff})

    /* Print the NUL-terminated string at esi on COM1 and stop: there is no other way out yet. */
early_die32:
    movw $0x3fd, %dx
2:  inb %dx, %al
    testb $0x20, %al
    jz 2b
    movb (%esi), %al
    testb %al, %al
    jz 3f
    movw $0x3f8, %dx
    outb %al, %dx
    incl %esi
    jmp early_die32
3:  hlt
    jmp 3b

    .code64
start64_low:
    movabsq $start64_high, %rax
    jmp *%rax
start64_high:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $(boot_stack + {stack_size}), %rsp
    movl %ebp, %esi                     /* arg 1: multiboot info (physical) */
    movl ${mb_boot_magic}, %edi         /* arg 0: magic, already checked */
    xorl %ebp, %ebp                     /* ends the frame-pointer chain for stack traces */
    call rust_start
4:  hlt
    jmp 4b

    .section .rodata.boot, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 64-bit code */
    .quad 0x00cf92000000ffff            /* data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt - {voff}
msg_magic:
    .asciz "xen-core: not loaded by a multiboot1 loader\r\n"
msg_nolm:
    .asciz "xen-core: needs an x86_64 CPU with NX\r\n"

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .globl boot_pml4
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096
    .globl boot_stack
boot_stack:     .skip {stack_size}
"#,
    mb_magic = const MB_MAGIC,
    mb_flags = const MB_FLAGS,
    mb_boot_magic = const MB_BOOT_MAGIC,
    voff = const VOFF,
    voff_l4 = const (VOFF >> 39) & 511,
    voff_l3 = const (VOFF >> 30) & 511,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static boot_stack: u8;
}

/// Top of the boot stack, which stays the boot CPU's hypervisor stack.
pub fn boot_stack_top() -> u64 {
    core::ptr::addr_of!(boot_stack) as u64 + BOOT_STACK_SIZE as u64
}

/// The range of the boot CPU's hypervisor stack, for bounded stack walks.
pub fn hypervisor_stack_bounds() -> (u64, u64) {
    let top = boot_stack_top();
    (top - BOOT_STACK_SIZE as u64, top)
}

/// Reads the saved frame pointer and return address at `rbp` (inside the stack bounds).
pub fn read_stack_pair(rbp: u64) -> (u64, u64) {
    let (lo, hi) = hypervisor_stack_bounds();
    assert!(rbp >= lo && rbp + 16 <= hi && rbp.is_multiple_of(8));
    // SAFETY: `rbp` lies 8-aligned inside the hypervisor stack (checked), which is mapped.
    unsafe { ((rbp as *const u64).read(), (rbp as *const u64).add(1).read()) }
}

/// The current frame pointer, to start a stack trace from Rust code (e.g. a panic).
pub fn current_frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    rbp
}
