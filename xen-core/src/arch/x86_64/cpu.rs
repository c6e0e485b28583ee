//! Per-CPU processor state: the GDT with Xen's reserved selectors, the TSS and its IST stacks,
//! the IDT, the `syscall` MSRs and the control-register features the hypervisor runs with.
//!
//! The GDT reproduces Xen's layout because guests hard-code its selectors: the reserved area
//! starts at entry 7168 (`0xe000`), holding the hypervisor's own code/data selectors and the
//! flat ring-3 selectors `0xe023`/`0xe02b`/`0xe033` that every PV guest runs on. `STAR` is set
//! so `sysret`'s derived selectors are exactly those ring-3 ones, as on Xen.

use core::cell::UnsafeCell;
use core::mem::size_of;

use x86_64::VirtAddr;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::tss::TaskStateSegment;

use super::layout::IST_STACK_SIZE;
use super::percpu::PerCpu;

/// First GDT entry reserved to the hypervisor, as in Xen's ABI.
pub const FIRST_RESERVED_GDT_ENTRY: usize = 7168;
/// Hypervisor 64-bit code selector (Xen's `__HYPERVISOR_CS64`).
pub const HV_CS: u16 = 0xe008;
/// Hypervisor data/stack selector (Xen's `__HYPERVISOR_DS32`).
pub const HV_DS: u16 = 0xe010;
/// Guest selectors (ring 3): 32-bit code, data/stack, 64-bit code.
pub const GUEST_CS32: u16 = 0xe023;
pub const GUEST_DS: u16 = 0xe02b;
pub const GUEST_CS64: u16 = 0xe033;
/// Task-state segment selector.
pub const TSS_SEL: u16 = 0xe040;
const GDT_ENTRIES: usize = FIRST_RESERVED_GDT_ENTRY + 12;

/// IST slots (1-based in the IDT gate, 0-based in the TSS array).
pub const IST_NMI: u8 = 1;
pub const IST_DOUBLE_FAULT: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

const MSR_EFER: u32 = 0xC000_0080;
const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_CSTAR: u32 = 0xC000_0083;
const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_FS_BASE: u32 = 0xC000_0100;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// RFLAGS bits cleared on `syscall`: IF (no interrupt before the stack switch), TF, DF, AC
/// (SMAP checks stay on), NT, IOPL.
const SYSCALL_FMASK: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18) | (1 << 14) | (3 << 12);

#[repr(C, align(4096))]
struct Gdt([u64; GDT_ENTRIES]);

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Gate([u64; 2]);

#[repr(C, align(4096))]
struct Idt([Gate; 256]);

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; 3]);

/// The processor tables of one CPU. Written once during that CPU's bring-up, then read only
/// by the hardware (the TSS's RSP0 is the single exception, see `set_kernel_stack`).
pub struct CpuTables {
    gdt: UnsafeCell<Gdt>,
    idt: UnsafeCell<Idt>,
    tss: UnsafeCell<TaskStateSegment>,
    ist: UnsafeCell<IstStacks>,
}

// SAFETY: each CpuTables is touched by its own CPU only (bring-up, then hardware reads).
unsafe impl Sync for CpuTables {}

static CPU0_TABLES: CpuTables = CpuTables {
    gdt: UnsafeCell::new(Gdt([0; GDT_ENTRIES])),
    idt: UnsafeCell::new(Idt([Gate([0; 2]); 256])),
    tss: UnsafeCell::new(TaskStateSegment::new()),
    ist: UnsafeCell::new(IstStacks([[0; IST_STACK_SIZE]; 3])),
};

/// Descriptor for a flat segment: `access` byte, and `flags` nibble (G, D/B, L).
const fn seg(access: u64, flags: u64) -> u64 {
    0xFFFF | (access << 40) | (0xF << 48) | (flags << 52)
}

/// Builds and loads the boot CPU's GDT, TSS and IDT, and programs the syscall MSRs and CR0/CR4.
/// `stack_top` is the hypervisor stack every entry from a guest lands on.
pub fn init_boot_cpu(
    percpu: &'static PerCpu,
    stack_top: u64,
    idt_stubs: u64,
    smep: bool,
    smap: bool,
) {
    let t = &CPU0_TABLES;
    // SAFETY: bring-up of the boot CPU runs once, before interrupts are enabled and before any
    // other code can see these tables, so these exclusive borrows are unique.
    let (gdt, idt, tss, ist) =
        unsafe { (&mut *t.gdt.get(), &mut *t.idt.get(), &mut *t.tss.get(), &*t.ist.get()) };

    let r = FIRST_RESERVED_GDT_ENTRY;
    gdt.0[r + 1] = seg(0x9A, 0xA); // 0xe008: ring-0 64-bit code
    gdt.0[r + 2] = seg(0x92, 0xC); // 0xe010: ring-0 data
    gdt.0[r + 4] = seg(0xFA, 0xC); // 0xe023: ring-3 32-bit code
    gdt.0[r + 5] = seg(0xF2, 0xC); // 0xe02b: ring-3 data
    gdt.0[r + 6] = seg(0xFA, 0xA); // 0xe033: ring-3 64-bit code

    for i in 0..3 {
        let base = ist.0[i].as_ptr() as u64;
        tss.interrupt_stack_table[i] = VirtAddr::new(base + IST_STACK_SIZE as u64);
    }
    tss.privilege_stack_table[0] = VirtAddr::new(stack_top);
    tss.iomap_base = size_of::<TaskStateSegment>() as u16; // no I/O bitmap: ring 3 has no ports
    let tss_base = tss as *const TaskStateSegment as u64;
    let tss_limit = size_of::<TaskStateSegment>() as u64 - 1;
    let tss_idx = usize::from(TSS_SEL >> 3);
    gdt.0[tss_idx] = (tss_limit & 0xFFFF)
        | ((tss_base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((tss_limit >> 16) & 0xF) << 48)
        | (((tss_base >> 24) & 0xFF) << 56);
    gdt.0[tss_idx + 1] = tss_base >> 32;

    for (vector, gate) in idt.0.iter_mut().enumerate() {
        let handler = idt_stubs + vector as u64 * super::entry::STUB_STRIDE;
        let ist_slot: u64 = match vector {
            2 => IST_NMI.into(),
            8 => IST_DOUBLE_FAULT.into(),
            18 => IST_MACHINE_CHECK.into(),
            _ => 0,
        };
        // #BP and #OF may be raised with int3/into from ring 3; every other gate but 0x80 is
        // DPL 0, so a guest's `int n` arrives as #GP and is emulated against its virtual trap
        // table.
        // 0x80 too, as on Xen: `int $0x80` reaches the hypervisor as itself (not as a #GP
        // whose error code would encode the vector), and is the guest's software interrupt.
        let dpl: u64 = if matches!(vector, 3 | 4 | 0x80) { 3 } else { 0 };
        let kind: u64 = 0x8E | (dpl << 5); // present, 64-bit interrupt gate (IF cleared)
        gate.0[0] = (handler & 0xFFFF)
            | (u64::from(HV_CS) << 16)
            | (ist_slot << 32)
            | (kind << 40)
            | (((handler >> 16) & 0xFFFF) << 48);
        gate.0[1] = handler >> 32;
    }

    let gdt_ptr = DescriptorTablePointer {
        limit: (size_of::<Gdt>() - 1) as u16,
        base: VirtAddr::new(gdt as *const Gdt as u64),
    };
    let idt_ptr = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the tables above are 'static, correctly formed, and the selectors reloaded below
    // name descriptors just written; the current code runs in ring 0 on the boot stack.
    unsafe {
        x86_64::instructions::tables::lgdt(&gdt_ptr);
        core::arch::asm!(
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            cs = in(reg) u64::from(HV_CS),
            ds = in(reg) u64::from(HV_DS),
            tmp = out(reg) _,
        );
        x86_64::instructions::tables::load_tss(x86_64::structures::gdt::SegmentSelector(TSS_SEL));
        x86_64::instructions::tables::lidt(&idt_ptr);
    }

    // SAFETY: MSR writes configure this CPU's syscall entry and per-CPU base; the values are
    // the entry stub's address, Xen-compatible selectors and flag mask. GS_BASE is written
    // after the selector reload above (which zeroed it).
    unsafe {
        let star = (u64::from(GUEST_CS32) << 48) | (u64::from(HV_CS) << 32);
        Msr::new(MSR_STAR).write(star);
        Msr::new(MSR_LSTAR).write(super::entry::syscall_entry_addr());
        Msr::new(MSR_CSTAR).write(super::entry::syscall_entry_addr());
        Msr::new(MSR_FMASK).write(SYSCALL_FMASK);
        Msr::new(MSR_GS_BASE).write(percpu as *const PerCpu as u64);
        Msr::new(MSR_KERNEL_GS_BASE).write(0);
        let mut efer = Msr::new(MSR_EFER);
        efer.write(efer.read() | 1 | (1 << 11)); // SCE | NXE
    }

    // Guests use SSE, so the FPU is on (CR0.EM off, MP/NE on, OSFXSR/OSXMMEXCPT on); the
    // hypervisor itself is soft-float and saves guest state eagerly on every switch.
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR | Cr0Flags::WRITE_PROTECT);
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE | Cr4Flags::PAGE_GLOBAL);
    // Never let ring 3 read or write FS/GS base directly: the hypervisor owns them.
    cr4.remove(Cr4Flags::FSGSBASE | Cr4Flags::TIMESTAMP_DISABLE);
    if smep {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    }
    if smap {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    }
    // SAFETY: these flags only enable features this CPU was checked to have (caller) and that
    // the hypervisor is written for; paging and protection stay on.
    unsafe {
        Cr0::write(cr0);
        Cr4::write(cr4);
    }
}

/// CPUID leaf values.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Whether the CPU supports SMEP and SMAP (CPUID 7.0:EBX bits 7 and 20).
pub fn has_smep_smap() -> (bool, bool) {
    let max = cpuid(0, 0)[0];
    if max < 7 {
        return (false, false);
    }
    let ebx = cpuid(7, 0)[1];
    (ebx & (1 << 7) != 0, ebx & (1 << 20) != 0)
}

/// Reads an MSR.
pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: callers pass architectural MSRs that exist on every x86_64 CPU.
    unsafe { Msr::new(msr).read() }
}

/// Writes an MSR that holds a segment base (FS, GS, KERNEL_GS). Non-canonical values would
/// fault, so callers check them first.
pub fn write_base_msr(msr: u32, value: u64) {
    debug_assert!(matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_KERNEL_GS_BASE));
    // SAFETY: writing a canonical segment base changes only where fs/gs-relative accesses go;
    // the hypervisor's own GS base is only changed through swapgs in the entry code.
    unsafe { Msr::new(msr).write(value) };
}

/// Stops this CPU for good (interrupts off).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The faulting address of the last page fault.
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Enables interrupts and halts until one arrives, atomically (no lost wake-up), then
/// disables them again.
pub fn idle_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// Lets a pending interrupt in (one instruction with interrupts on), then turns them off
/// again: what the idle loop does between pieces of its own work.
pub fn let_interrupts_in() {
    x86_64::instructions::interrupts::enable();
    x86_64::instructions::nop();
    x86_64::instructions::interrupts::disable();
}

/// How many guest entries this CPU's GDT holds now (those past it are zero).
static GUEST_GDT_ENTS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Puts the running vCPU's descriptors in this CPU's GDT: entry `i < ents` becomes
/// `desc(i)`, and entries a previous vCPU left above it are cleared. The hypervisor's own
/// entries (from `FIRST_RESERVED_GDT_ENTRY`) are never touched. The caller checked every
/// descriptor (`mm::descriptor`): the guest's own descriptor pages are read-only to it, so
/// these copies are what it may use.
pub fn load_guest_gdt(ents: usize, desc: impl Fn(usize) -> u64) {
    let ents = ents.min(FIRST_RESERVED_GDT_ENTRY);
    let prev = GUEST_GDT_ENTS.swap(ents, core::sync::atomic::Ordering::Relaxed);
    let gdt = CPU0_TABLES.gdt.get().cast::<u64>();
    for i in 0..ents.max(prev) {
        let d = if i < ents { desc(i) } else { 0 };
        // SAFETY: i < FIRST_RESERVED_GDT_ENTRY, inside this CPU's GDT, which only this CPU
        // writes after bring-up; the processor reads an entry only when a selector naming it
        // is loaded, which no code does while this runs (interrupts are off).
        unsafe { gdt.add(i).write_volatile(d) };
    }
}

/// Rewrites one guest entry of this CPU's GDT (`update_descriptor` on the running vCPU's
/// table), if it is within what is loaded.
pub fn update_guest_gdt_entry(i: usize, d: u64) {
    if i < GUEST_GDT_ENTS.load(core::sync::atomic::Ordering::Relaxed) {
        // SAFETY: as in `load_guest_gdt`: a guest entry of this CPU's GDT, below the reserved.
        unsafe { CPU0_TABLES.gdt.get().cast::<u64>().add(i).write_volatile(d) };
    }
}
