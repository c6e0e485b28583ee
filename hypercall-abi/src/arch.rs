//! x86_64 specifics of the PV ABI: the flat selectors, the hypervisor's hole in the address
//! space, the virtual IDT entry ([`TrapInfo`]), the frame `iret` consumes ([`IretContext`]),
//! the bounce frame the hypervisor builds for exceptions and events, and the register file
//! ([`CpuUserRegs`]) used by `VCPUOP_initialise`.
//!
//! A 64-bit PV guest kernel runs in ring 3, like its user space, so kernel and user share the
//! `0xe033`/`0xe02b` selectors; the hypervisor tracks kernel vs user mode itself.

use crate::types::VAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// ---- Flat selectors in the hypervisor-reserved part of every GDT ----

/// 32-bit ring-3 code (GDT entry 7172).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// 64-bit ring-3 code (GDT entry 7174): the CS of both guest kernel and guest user.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Ring-3 data for 32-bit code.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// Ring-3 data for 64-bit code: the NULL selector (64-bit mode ignores DS).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// Ring-3 stack for 32-bit code.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// Ring-3 stack for 64-bit code.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// Guest kernel CS (= user CS).
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Guest kernel CS (= [`FLAT_KERNEL_CS64`]).
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Guest kernel DS (NULL).
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Guest kernel DS (= [`FLAT_KERNEL_DS64`]).
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Guest kernel SS.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Guest kernel SS (= [`FLAT_KERNEL_SS64`]).
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;
/// Guest user CS.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// Guest user DS (NULL).
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// Guest user SS.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// 32-bit compat user CS.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;

// ---- Address-space layout ----

/// Start of the range reserved for the hypervisor in every PV address space (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the hypervisor range (L4 slot 272).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Read-only machine-to-phys table mapped into every guest: `u64` PFN per MFN.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the M2P mapping.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Entries in the M2P table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;
/// First L4 slot the hypervisor owns.
pub const HYPERVISOR_L4_FIRST: usize = 256;
/// One past the last L4 slot the hypervisor owns.
pub const HYPERVISOR_L4_END: usize = 272;

/// First GDT page reserved for the hypervisor (guest GDTs use pages 0..14).
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// First reserved GDT byte.
pub const FIRST_RESERVED_GDT_BYTE: u32 = FIRST_RESERVED_GDT_PAGE * 4096;
/// First reserved GDT entry (7168): `set_gdt` accepts at most this many entries.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = FIRST_RESERVED_GDT_BYTE / 8;

/// CR3 value for a page-table frame.
#[must_use]
pub const fn pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}

/// Frame number in a CR3 value.
#[must_use]
pub const fn cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

// ---- set_segment_base ----

/// `set_segment_base`: FS base.
pub const SEGBASE_FS: u32 = 0;
/// `set_segment_base`: user GS base (the one `swapgs` brings in for user mode).
pub const SEGBASE_GS_USER: u32 = 1;
/// `set_segment_base`: kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `set_segment_base`: load user GS *selector* `base[15:0]`.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

// ---- Virtual IDT ----

/// `TrapInfo::flags` bits 0-1: the DPL that may raise the vector with `int n`.
pub const TI_DPL_MASK: u8 = 3;
/// `TrapInfo::flags`: mask events (set `evtchn_upcall_mask`) on delivery, like an interrupt
/// gate clearing IF. Xen's header comment says "bit 4" but the value is 4 (bit 2).
pub const TI_MASK_EVENTS: u8 = 4;

/// One virtual IDT entry for `set_trap_table` (16 bytes). Written by the guest.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TrapInfo {
    /// IN: exception vector (0..=255).
    pub vector: u8,
    /// IN: DPL in bits 0-1, [`TI_MASK_EVENTS`].
    pub flags: u8,
    /// IN: code selector of the handler ([`FLAT_KERNEL_CS`]).
    pub cs: u16,
    /// Padding.
    pub _pad: u32,
    /// IN: handler address; 0 ends the table (and clears the vector).
    pub address: VAddr,
}

impl TrapInfo {
    /// An entry for `vector` with handler `address`.
    #[must_use]
    pub const fn new(vector: u8, dpl: u8, mask_events: bool, address: VAddr) -> Self {
        let flags = (dpl & TI_DPL_MASK) | if mask_events { TI_MASK_EVENTS } else { 0 };
        Self { vector, flags, cs: FLAT_KERNEL_CS, _pad: 0, address }
    }

    /// The all-zero terminator of a trap table.
    pub const END: TrapInfo = TrapInfo { vector: 0, flags: 0, cs: 0, _pad: 0, address: VAddr(0) };

    /// DPL field.
    #[must_use]
    pub const fn dpl(&self) -> u8 {
        self.flags & TI_DPL_MASK
    }

    /// True if delivery masks events.
    #[must_use]
    pub const fn masks_events(&self) -> bool {
        self.flags & TI_MASK_EVENTS != 0
    }
}

/// x86 exception vectors (for trap tables and bounce frames).
pub mod vector {
    /// #DE divide error.
    pub const DIVIDE_ERROR: u8 = 0;
    /// #DB debug.
    pub const DEBUG: u8 = 1;
    /// NMI.
    pub const NMI: u8 = 2;
    /// #BP breakpoint (`int3`).
    pub const BREAKPOINT: u8 = 3;
    /// #OF overflow.
    pub const OVERFLOW: u8 = 4;
    /// #BR bound range.
    pub const BOUNDS: u8 = 5;
    /// #UD invalid opcode.
    pub const INVALID_OP: u8 = 6;
    /// #NM device not available (virtual CR0.TS set: see `fpu_taskswitch`).
    pub const NO_DEVICE: u8 = 7;
    /// #DF double fault.
    pub const DOUBLE_FAULT: u8 = 8;
    /// #TS invalid TSS.
    pub const INVALID_TSS: u8 = 10;
    /// #NP segment not present.
    pub const NO_SEGMENT: u8 = 11;
    /// #SS stack fault.
    pub const STACK_ERROR: u8 = 12;
    /// #GP general protection.
    pub const GP_FAULT: u8 = 13;
    /// #PF page fault (address in `vcpu_info.arch.cr2`).
    pub const PAGE_FAULT: u8 = 14;
    /// #MF x87 error.
    pub const COPRO_ERROR: u8 = 16;
    /// #AC alignment check.
    pub const ALIGNMENT_CHECK: u8 = 17;
    /// #MC machine check.
    pub const MACHINE_CHECK: u8 = 18;
    /// #XM SIMD error.
    pub const SIMD_ERROR: u8 = 19;

    /// True if the CPU pushes an error code for this vector (so the bounce frame has one).
    #[must_use]
    pub const fn has_error_code(v: u8) -> bool {
        matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
    }
}

// ---- Trap bounce (hypervisor-internal, named after Xen's) ----

/// Trap bounce: deliver an exception.
pub const TBF_EXCEPTION: u8 = 1;
/// Trap bounce: the frame carries an error code.
pub const TBF_EXCEPTION_ERRCODE: u8 = 2;
/// Trap bounce: set `evtchn_upcall_mask` (event upcall, or a trap with [`TI_MASK_EVENTS`]).
pub const TBF_INTERRUPT: u8 = 8;
/// Trap bounce: failsafe callback (frame also holds ds, es, fs, gs).
pub const TBF_FAILSAFE: u8 = 16;

/// Bounce frame written on the guest kernel stack, in 8-byte slots from the new rsp up:
/// `rcx, r11, [error code], rip, cs, rflags, rsp, ss`. The saved `cs` slot carries the saved
/// upcall mask in bits 32..40 ([`BOUNCE_CS_SAVED_MASK_SHIFT`]).
pub mod bounce {
    /// Slot of rcx.
    pub const RCX: usize = 0;
    /// Slot of r11.
    pub const R11: usize = 1;
    /// Slots in a frame without an error code.
    pub const SLOTS: usize = 7;
    /// Slots in a frame with an error code (inserted after r11).
    pub const SLOTS_WITH_ERRCODE: usize = 8;
    /// Slots in a failsafe frame: `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss`.
    pub const SLOTS_FAILSAFE: usize = 11;
}

/// Bit position of the saved `evtchn_upcall_mask` in the bounce frame's `cs` slot.
pub const BOUNCE_CS_SAVED_MASK_SHIFT: u32 = 32;

// ---- iret ----

/// `IretContext::flags`: the guest entered through `syscall`; return like `sysret` (rcx, r11,
/// cs and ss are not restored from the frame).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// What `HYPERVISOR_iret` reads at the guest rsp (72 bytes, lowest address first). Built by
/// the guest; consumed by the hypervisor, which returns to `cs:rip` with `ss:rsp`.
///
/// `cs & 3 == 3` returns to guest user mode (needs a user page table), anything else to guest
/// kernel mode. IF in `rflags` is forced on, IOPL stripped, and `evtchn_upcall_mask` is set to
/// `!IF` from the frame: this is how a guest atomically re-enables events and returns.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IretContext {
    /// rax to restore (the stub pushed it to free rax for the hypercall number).
    pub rax: u64,
    /// r11 to restore (unless `VGCF_IN_SYSCALL`).
    pub r11: u64,
    /// rcx to restore (unless `VGCF_IN_SYSCALL`).
    pub rcx: u64,
    /// `VGCF_IN_SYSCALL` or 0.
    pub flags: u64,
    /// Return address.
    pub rip: u64,
    /// Return code selector.
    pub cs: u64,
    /// Return flags.
    pub rflags: u64,
    /// Return stack pointer.
    pub rsp: u64,
    /// Return stack selector.
    pub ss: u64,
}

/// General registers as Xen's `cpu_user_regs` (200 bytes), used in `vcpu_guest_context`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[allow(missing_docs)] // register names speak for themselves
pub struct CpuUserRegs {
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
    /// Private to the hypervisor.
    pub error_code: u32,
    /// Private to the hypervisor.
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: u16,
    /// Saved `evtchn_upcall_mask` (rflags.IF == !this).
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    /// Non-zero takes precedence over the FS base.
    pub fs: u16,
    pub _pad5: [u16; 3],
    /// Non-zero takes precedence over the user GS base.
    pub gs: u16,
    pub _pad6: [u16; 3],
}

crate::assert_layout!(TrapInfo, size = 16, vector = 0, flags = 1, cs = 2, address = 8);
crate::assert_layout!(
    IretContext,
    size = 72,
    rax = 0,
    r11 = 8,
    rcx = 16,
    flags = 24,
    rip = 32,
    cs = 40,
    rflags = 48,
    rsp = 56,
    ss = 64
);
crate::assert_layout!(
    CpuUserRegs,
    size = 200,
    r15 = 0,
    rbp = 32,
    r11 = 48,
    rax = 80,
    rdi = 112,
    error_code = 120,
    entry_vector = 124,
    rip = 128,
    cs = 136,
    saved_upcall_mask = 140,
    rflags = 144,
    rsp = 152,
    ss = 160,
    es = 168,
    ds = 176,
    fs = 184,
    gs = 192
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(FLAT_KERNEL_CS, 0xe033);
        assert_eq!(FLAT_KERNEL_SS, 0xe02b);
        assert_eq!(FLAT_USER_DS64, 0);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
        // The flat selectors sit in the reserved GDT area, RPL 3.
        assert!(u32::from(FLAT_RING3_CS64 >> 3) >= FIRST_RESERVED_GDT_ENTRY);
        assert_eq!(FLAT_RING3_CS64 & 3, 3);
    }

    #[test]
    fn hole_is_l4_slots_256_to_271() {
        assert_eq!((HYPERVISOR_VIRT_START >> 39) & 511, HYPERVISOR_L4_FIRST as u64);
        assert_eq!((HYPERVISOR_VIRT_END >> 39) & 511, HYPERVISOR_L4_END as u64);
        assert_eq!(MACH2PHYS_NR_ENTRIES, 1 << 35);
    }

    #[test]
    fn trap_info_flags() {
        let t = TrapInfo::new(vector::BREAKPOINT, 3, true, VAddr(0x1000));
        assert_eq!(t.dpl(), 3);
        assert!(t.masks_events());
        assert_eq!(t.cs, FLAT_KERNEL_CS);
        assert!(vector::has_error_code(vector::PAGE_FAULT));
        assert!(!vector::has_error_code(vector::BREAKPOINT));
    }
}
