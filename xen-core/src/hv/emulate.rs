//! The few privileged operations the PV ABI emulates for a guest instead of reflecting #GP:
//! Xen's forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`), which reports the hypervisor
//! leaves, and (for dom0) port I/O. Everything else a guest tries in ring 3 is its own #GP.

use super::arch::cpu;
use super::arch::entry::GuestRegs;
use super::arch::uaccess;
use super::domain::{Domain, VcpuContext};

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

/// Emulates a privileged instruction the ABI allows (none yet); false to reflect #GP.
pub fn privileged_op(_d: &Domain, _ctx: &mut VcpuContext, _regs: &mut GuestRegs) -> bool {
    false
}
