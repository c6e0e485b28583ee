//! The few privileged operations the PV ABI emulates for a guest instead of reflecting #GP:
//! Xen's forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`), which reports the hypervisor
//! leaves, and port I/O (`in`/`out`, not the string forms) for a domain with I/O ports (dom0)
//! once its kernel raised its virtual IOPL. Everything else a guest tries in ring 3 is its own
//! #GP: cli/sti, hlt, moves to and from control and debug registers, rdmsr/wrmsr,
//! lgdt/lidt/ltr/lldt, invlpg, wbinvd, swapgs (see docs/ARCHITECTURE.md).

use crate::arch::cpu;
use crate::arch::entry::GuestRegs;
use crate::arch::{io, uaccess};
use crate::domain::{Domain, VcpuContext};

/// `ud2; .ascii "xen"; cpuid`
const FORCED_CPUID: [u8; 7] = [0x0F, 0x0B, b'x', b'e', b'n', 0x0F, 0xA2];

/// Emulates a forced-emulation CPUID at the guest's rip; false if the bytes are not that.
pub fn forced_cpuid(_ctx: &mut VcpuContext, regs: &mut GuestRegs) -> bool {
    let mut insn = [0u8; 7];
    if uaccess::copy_from_guest(&mut insn, regs.rip).is_err() || insn != FORCED_CPUID {
        return false;
    }
    let [a, b, c, d] = cpuid_for_guest(regs.rax as u32, regs.rcx as u32);
    regs.rax = a.into();
    regs.rbx = b.into();
    regs.rcx = c.into();
    regs.rdx = d.into();
    regs.rip = regs.rip.wrapping_add(7);
    true
}

/// CPUID as a PV guest should see it: the hypervisor leaves at 0x40000000 say "XenVMMXenVMM"
/// and version 4.17 (the ABI we follow); leaf 1 has the hypervisor bit set.
pub fn cpuid_for_guest(leaf: u32, subleaf: u32) -> [u32; 4] {
    let sig = |s: &[u8; 4]| u32::from_le_bytes(*s);
    match leaf {
        0x4000_0000 => [0x4000_0002, sig(b"XenV"), sig(b"MMXe"), sig(b"nVMM")],
        0x4000_0001 => [(4 << 16) | 17, 0, 0, 0],
        0x4000_0002 => [1, 0x4000_0000, 0, 0],
        0x4000_0003..=0x4000_00FF => [0; 4],
        1 => {
            let mut r = cpu::cpuid(1, subleaf);
            r[2] |= 1 << 31; // hypervisor present
            r[2] &= !(1 << 5); // no VMX
            r
        }
        _ => cpu::cpuid(leaf, subleaf),
    }
}

/// Ports the hypervisor drives itself, which no guest may touch: the PICs, the PIT and its
/// gate, the RTC, COM1 (the hypervisor's console), QEMU's debug-exit and ACPI PM ports.
const RESERVED_PORTS: &[(u16, u16)] = &[
    (0x20, 0x21),
    (0xA0, 0xA1),
    (0x40, 0x43),
    (0x61, 0x61),
    (0x70, 0x71),
    (0x3F8, 0x3FF),
    (0xF4, 0xF7),
    (0x600, 0x63F),
];

fn port_allowed(d: &Domain, port: u16, size: u8) -> bool {
    let last = port.saturating_add(u16::from(size) - 1);
    d.is_privileged && !RESERVED_PORTS.iter().any(|&(lo, hi)| port <= hi && last >= lo)
}

/// Emulates `in`/`out` for a domain with I/O ports (dom0) whose kernel raised its virtual
/// IOPL with `physdev_op(set_iopl)`; false to reflect #GP (every other privileged instruction,
/// and I/O from anyone else).
pub fn privileged_op(d: &Domain, ctx: &mut VcpuContext, regs: &mut GuestRegs) -> bool {
    if !d.is_privileged || !ctx.kernel_mode || ctx.iopl == 0 {
        return false;
    }
    let mut insn = [0u8; 3];
    if uaccess::copy_from_guest(&mut insn, regs.rip).is_err() {
        return false;
    }
    let (prefix, op, rest) =
        if insn[0] == 0x66 { (1usize, insn[1], insn[2]) } else { (0, insn[0], insn[1]) };
    let wide = if prefix == 1 { 2u8 } else { 4u8 };
    // (size, port from imm8?, is_out, length)
    let (size, imm, out, len) = match op {
        0xE4 => (1, true, false, 2),
        0xE5 => (wide, true, false, 2),
        0xE6 => (1, true, true, 2),
        0xE7 => (wide, true, true, 2),
        0xEC => (1, false, false, 1),
        0xED => (wide, false, false, 1),
        0xEE => (1, false, true, 1),
        0xEF => (wide, false, true, 1),
        _ => return false,
    };
    let port = if imm { u16::from(rest) } else { regs.rdx as u16 };
    if !port_allowed(d, port, size) {
        return false;
    }
    if out {
        io::port_out(port, size, regs.rax as u32);
    } else {
        let v = u64::from(io::port_in(port, size));
        let mask = match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF_FFFF_FFFF,
        };
        // 32-bit results zero the upper half of rax, as the CPU does; narrower ones merge.
        regs.rax = if size == 4 { v } else { (regs.rax & !mask) | v };
    }
    regs.rip = regs.rip.wrapping_add(prefix as u64 + len);
    true
}
