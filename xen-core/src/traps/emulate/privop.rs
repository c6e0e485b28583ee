//! Privileged instructions a PV kernel executes in ring 3, the pure half: which operation the
//! faulting bytes are, and the rules Xen 4.17 applies to control registers, debug registers
//! and ports a domain has no access to. Carrying them out on the vCPU and the hardware is
//! `mod.rs`'s. Hardware-free, host-tested.
//!
//! - CR0: reads show the hardware's bits with the guest's TS; a write may change TS alone.
//!   CR2: the guest's value. CR3: its L4's machine address. CR4: the guest's TSD and DE
//!   (what the CPUID policy allows) over the hardware's PAE, MCE, OSFXSR and OSXMMEXCPT;
//!   other bits written are dropped, never faulted.
//! - DR0-3 must be guest addresses; DR6/DR7's upper halves are reserved; DR7.GD is refused;
//!   DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD); I/O breakpoints need CR4.DE and are kept
//!   aside, not loaded.
//! - Ports: with I/O privilege but no access to a port, reads give all ones except the
//!   latched PCI address (0xCF8, dword) and CMOS index (0x70); writes only set those latches.

use hypercall_abi::Errno;

use super::decode::{Insn, Opcode, Rm};
use crate::domain::privregs::{DR6_DEFAULT, PrivRegs};

pub const CR0_TS: u64 = 1 << 3;
pub const CR4_TSD: u64 = 1 << 2;
pub const CR4_DE: u64 = 1 << 3;
const CR4_PAE: u64 = 1 << 5;
const CR4_MCE: u64 = 1 << 6;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// CR4 bits the guest chooses (those its CPUID policy shows: no FSGSBASE, no OSXSAVE).
const CR4_GUEST: u64 = CR4_TSD | CR4_DE;
/// CR4 bits the guest sees from the hardware.
const CR4_VISIBLE: u64 = CR4_PAE | CR4_MCE | CR4_OSFXSR | CR4_OSXMMEXCPT;

/// A privileged operation, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivOp {
    Rdmsr,
    Wrmsr,
    ReadCr {
        cr: u8,
        gpr: u8,
    },
    WriteCr {
        cr: u8,
        gpr: u8,
    },
    ReadDr {
        dr: u8,
        gpr: u8,
    },
    WriteDr {
        dr: u8,
        gpr: u8,
    },
    Clts,
    Wbinvd,
    Cli,
    Sti,
    /// `in`/`out`: size in bytes, the port (an immediate, or dx when `None`).
    In {
        size: u8,
        port: Option<u8>,
    },
    Out {
        size: u8,
        port: Option<u8>,
    },
}

/// The privileged operation `insn` is; `None` for anything else (and for a `lock` prefix,
/// which none of them takes).
pub fn privop(insn: &Insn) -> Option<PrivOp> {
    if insn.lock {
        return None;
    }
    let io_size = if insn.opsize { 2 } else { 4 };
    let port = Some(insn.imm as u8);
    Some(match insn.opcode {
        Opcode::Two(0x32) => PrivOp::Rdmsr,
        Opcode::Two(0x30) => PrivOp::Wrmsr,
        Opcode::Two(0x06) => PrivOp::Clts,
        Opcode::Two(0x09) => PrivOp::Wbinvd,
        // The CPU ignores the mod field of mov to/from cr/dr: always a register.
        Opcode::Two(0x20) => PrivOp::ReadCr { cr: insn.reg, gpr: rm_reg(insn)? },
        Opcode::Two(0x22) => PrivOp::WriteCr { cr: insn.reg, gpr: rm_reg(insn)? },
        Opcode::Two(0x21) => PrivOp::ReadDr { dr: insn.reg, gpr: rm_reg(insn)? },
        Opcode::Two(0x23) => PrivOp::WriteDr { dr: insn.reg, gpr: rm_reg(insn)? },
        Opcode::One(0xFA) => PrivOp::Cli,
        Opcode::One(0xFB) => PrivOp::Sti,
        Opcode::One(0xE4) => PrivOp::In { size: 1, port },
        Opcode::One(0xE5) => PrivOp::In { size: io_size, port },
        Opcode::One(0xE6) => PrivOp::Out { size: 1, port },
        Opcode::One(0xE7) => PrivOp::Out { size: io_size, port },
        Opcode::One(0xEC) => PrivOp::In { size: 1, port: None },
        Opcode::One(0xED) => PrivOp::In { size: io_size, port: None },
        Opcode::One(0xEE) => PrivOp::Out { size: 1, port: None },
        Opcode::One(0xEF) => PrivOp::Out { size: io_size, port: None },
        _ => return None,
    })
}

/// The register operand of mov cr/dr (whatever mod says, the low bits name a register).
fn rm_reg(insn: &Insn) -> Option<u8> {
    match insn.rm? {
        Rm::Reg(r) => Some(r),
        Rm::Mem(_) => None,
    }
}

/// CR0 as the guest reads it.
pub fn cr0_read(hw_cr0: u64, guest_ts: bool) -> u64 {
    (hw_cr0 & !CR0_TS) | if guest_ts { CR0_TS } else { 0 }
}

/// The guest's TS after writing `val` to CR0, or `None` (#GP) if it changes anything else.
pub fn cr0_write(hw_cr0: u64, val: u64) -> Option<bool> {
    ((val ^ hw_cr0) & !CR0_TS == 0).then_some(val & CR0_TS != 0)
}

/// CR4 as the guest reads it.
pub fn cr4_read(hw_cr4: u64, p: &PrivRegs) -> u64 {
    (p.cr4 & CR4_GUEST) | (hw_cr4 & CR4_VISIBLE)
}

/// Records a CR4 write: the guest bits it may choose, the rest dropped.
pub fn cr4_write(p: &mut PrivRegs, val: u64) {
    p.cr4 = val & CR4_GUEST;
}

/// Whether `va` may hold a breakpoint: a guest address (Xen's `__addr_ok`).
pub fn breakpoint_addr_ok(va: u64) -> bool {
    !(0x0000_8000_0000_0000..0xFFFF_8800_0000_0000).contains(&va)
}

const DR6_RESERVED_ZERO: u64 = 1 << 12;
const DR7_RESERVED_ZERO: u64 = (1 << 11) | (1 << 12) | (1 << 14) | (1 << 15);
const DR7_RESERVED_ONE: u64 = 1 << 10;
const DR7_GD: u64 = 1 << 13;
const DR7_ACTIVE: u64 = 0xFF;

/// `set_debugreg` and `mov %drN`: Xen's validation. `EPERM` for a hypervisor address or
/// DR7.GD (or an I/O breakpoint without CR4.DE), `EINVAL` for upper-half bits of DR6/DR7,
/// `ENODEV` for DR4/DR5 under CR4.DE and for registers past 7.
pub fn set_debugreg(p: &mut PrivRegs, reg: u32, value: u64) -> Result<(), Errno> {
    let de = p.cr4 & CR4_DE != 0;
    match reg {
        0..=3 => {
            if !breakpoint_addr_ok(value) {
                return Err(Errno::EPERM);
            }
            p.dr[reg as usize] = value;
        }
        4 | 6 if !(reg == 4 && de) => {
            if value >> 32 != 0 {
                return Err(Errno::EINVAL);
            }
            p.dr6 = (value & !DR6_RESERVED_ZERO) | DR6_DEFAULT;
        }
        5 | 7 if !(reg == 5 && de) => {
            if value >> 32 != 0 {
                return Err(Errno::EINVAL);
            }
            let value = (value & !DR7_RESERVED_ZERO) | DR7_RESERVED_ONE;
            if value & DR7_GD != 0 {
                return Err(Errno::EPERM);
            }
            let mut io = 0;
            if value & DR7_ACTIVE != 0 {
                for i in 0..4 {
                    // R/W = 10b: an I/O breakpoint, meaningful only with CR4.DE.
                    if (value >> (16 + 4 * i)) & 3 == 2 {
                        if !de {
                            return Err(Errno::EPERM);
                        }
                        io |= value & (3 << (2 * i));
                    }
                }
            }
            p.dr7_emul = io;
            p.dr7 = value & !io;
        }
        _ => return Err(Errno::ENODEV),
    }
    Ok(())
}

/// `get_debugreg` and `mov from %drN`: `ENODEV` (#UD for the instruction) where
/// [`set_debugreg`] would refuse the register.
pub fn get_debugreg(p: &PrivRegs, reg: u32) -> Result<u64, Errno> {
    let de = p.cr4 & CR4_DE != 0;
    match reg {
        0..=3 => Ok(p.dr[reg as usize]),
        4 | 6 if !(reg == 4 && de) => Ok(p.dr6),
        5 | 7 if !(reg == 5 && de) => Ok(p.dr7 | p.dr7_emul),
        _ => Err(Errno::ENODEV),
    }
}

/// Folds a #DB's DR6 status into the guest's DR6 (the CPU's is reset after).
pub fn dr6_on_debug_trap(p: &mut PrivRegs, hw_dr6: u64) {
    p.dr6 |= hw_dr6 & !DR6_DEFAULT;
}

/// Whether port I/O is allowed at all: the virtual IOPL against the guest's privilege level,
/// which is 1 for its kernel (0 with the `architectural_iopl` assist) and 3 for user space.
pub fn iopl_ok(kernel_mode: bool, architectural_iopl: bool, iopl: u8) -> bool {
    let cpl = match (kernel_mode, architectural_iopl) {
        (true, true) => 0,
        (true, false) => 1,
        (false, _) => 3,
    };
    cpl <= iopl
}

/// A read of `size` bytes at `port` the domain has no access to.
pub fn unowned_port_read(p: &PrivRegs, port: u16, size: u8) -> u32 {
    if port == 0xCF8 && size == 4 {
        return p.pci_cf8;
    }
    let mut v = 0u32;
    for i in 0..size {
        let byte = if port.wrapping_add(u16::from(i)) == 0x70 { p.cmos_index } else { 0xFF };
        v |= u32::from(byte) << (8 * i);
    }
    v
}

/// A write of `size` bytes of `val` at `port` the domain has no access to: latched or dropped.
pub fn unowned_port_write(p: &mut PrivRegs, port: u16, size: u8, val: u32) {
    if port == 0xCF8 && size == 4 {
        p.pci_cf8 = val;
        return;
    }
    for i in 0..size {
        if port.wrapping_add(u16::from(i)) == 0x70 {
            p.cmos_index = (val >> (8 * i)) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode;
    use super::*;

    fn op(bytes: &[u8]) -> Option<PrivOp> {
        privop(&decode(bytes)?)
    }

    #[test]
    fn decodes_each_privileged_form() {
        assert_eq!(op(&[0x0F, 0x30]), Some(PrivOp::Wrmsr));
        assert_eq!(op(&[0x0F, 0x32]), Some(PrivOp::Rdmsr));
        assert_eq!(op(&[0x0F, 0x20, 0xE0]), Some(PrivOp::ReadCr { cr: 4, gpr: 0 }));
        assert_eq!(op(&[0x41, 0x0F, 0x22, 0xC1]), Some(PrivOp::WriteCr { cr: 0, gpr: 9 }));
        assert_eq!(op(&[0x44, 0x0F, 0x20, 0xC0]), Some(PrivOp::ReadCr { cr: 8, gpr: 0 }));
        assert_eq!(op(&[0x0F, 0x21, 0xF8]), Some(PrivOp::ReadDr { dr: 7, gpr: 0 }));
        assert_eq!(op(&[0x0F, 0x23, 0xC3]), Some(PrivOp::WriteDr { dr: 0, gpr: 3 }));
        assert_eq!(op(&[0x0F, 0x06]), Some(PrivOp::Clts));
        assert_eq!(op(&[0x0F, 0x09]), Some(PrivOp::Wbinvd));
        assert_eq!(op(&[0xFA]), Some(PrivOp::Cli));
        assert_eq!(op(&[0xFB]), Some(PrivOp::Sti));
        assert_eq!(op(&[0xE4, 0x60]), Some(PrivOp::In { size: 1, port: Some(0x60) }));
        assert_eq!(op(&[0x66, 0xE5, 0x60]), Some(PrivOp::In { size: 2, port: Some(0x60) }));
        assert_eq!(op(&[0xE7, 0x80]), Some(PrivOp::Out { size: 4, port: Some(0x80) }));
        assert_eq!(op(&[0xED]), Some(PrivOp::In { size: 4, port: None }));
        assert_eq!(op(&[0x48, 0xEF]), Some(PrivOp::Out { size: 4, port: None }));
        assert_eq!(op(&[0xEE]), Some(PrivOp::Out { size: 1, port: None }));
    }

    #[test]
    fn refuses_the_rest() {
        for bytes in [
            &[0xF0, 0x0F, 0x20, 0xC0][..], // lock mov cr: AMD's cr8 alias
            &[0xF4],                       // hlt
            &[0x0F, 0x01, 0xD1],           // xsetbv
            &[0x0F, 0x00, 0xD0],           // lldt
            &[0x0F, 0x01, 0x38],           // invlpg
            &[0x6C],                       // insb
            &[0xF3, 0x6E],                 // rep outsb
            &[0x0F, 0x01, 0xF8],           // swapgs
            &[0x48, 0x89, 0x37],           // a plain store
            &[0x65, 0x0F, 0x30],           // gs wrmsr
        ] {
            assert_eq!(op(bytes), None, "{bytes:x?}");
        }
    }

    #[test]
    fn control_registers() {
        let hw_cr0 = 0x8005_0033;
        assert_eq!(cr0_read(hw_cr0, true), 0x8005_003B);
        assert_eq!(cr0_read(hw_cr0 | CR0_TS, false), 0x8005_0033);
        assert_eq!(cr0_write(hw_cr0, hw_cr0 | CR0_TS), Some(true));
        assert_eq!(cr0_write(hw_cr0, hw_cr0), Some(false));
        assert_eq!(cr0_write(hw_cr0, hw_cr0 & !(1 << 16)), None);
        let mut p = PrivRegs::default();
        let hw_cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (1 << 7) | (1 << 20) | (1 << 21);
        assert_eq!(cr4_read(hw_cr4, &p), CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT);
        // PGE, PSE, FSGSBASE, OSXSAVE written: dropped; TSD and DE kept.
        cr4_write(&mut p, (1 << 7) | (1 << 4) | (1 << 16) | (1 << 18) | CR4_TSD | CR4_DE);
        assert_eq!(cr4_read(hw_cr4, &p), CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_TSD | CR4_DE);
    }

    #[test]
    fn debug_registers_as_xen_validates_them() {
        let mut p = PrivRegs::default();
        assert_eq!(get_debugreg(&p, 6), Ok(0xFFFF_0FF0));
        assert_eq!(get_debugreg(&p, 7), Ok(0x400));
        assert_eq!(set_debugreg(&mut p, 0, 0x7FFF_FFFF_F000), Ok(()));
        assert_eq!(set_debugreg(&mut p, 3, 0xFFFF_FFFF_8000_0000), Ok(()));
        assert_eq!(get_debugreg(&p, 3), Ok(0xFFFF_FFFF_8000_0000));
        // Hypervisor and non-canonical addresses.
        assert_eq!(set_debugreg(&mut p, 1, 0xFFFF_8000_0000_0000), Err(Errno::EPERM));
        assert_eq!(set_debugreg(&mut p, 1, 0xFFFF_87FF_FFFF_FFFF), Err(Errno::EPERM));
        assert_eq!(set_debugreg(&mut p, 1, 0x0000_8000_0000_0000), Err(Errno::EPERM));
        // DR6: reserved bits forced, upper half refused.
        assert_eq!(set_debugreg(&mut p, 6, 0x1001), Ok(()));
        assert_eq!(get_debugreg(&p, 6), Ok(0xFFFF_0FF1));
        assert_eq!(set_debugreg(&mut p, 6, 1 << 32), Err(Errno::EINVAL));
        // DR7: GD refused, reserved bits forced, enables kept.
        assert_eq!(set_debugreg(&mut p, 7, 1 << 13), Err(Errno::EPERM));
        assert_eq!(set_debugreg(&mut p, 7, 1 << 40), Err(Errno::EINVAL));
        assert_eq!(set_debugreg(&mut p, 7, 0xD0001 | (1 << 11)), Ok(()));
        assert_eq!(get_debugreg(&p, 7), Ok(0xD0401));
        assert!(p.dr7_active());
        // An I/O breakpoint needs CR4.DE; then it is kept aside from the CPU's DR7.
        assert_eq!(set_debugreg(&mut p, 7, 0x20002), Err(Errno::EPERM));
        // DR4/DR5 alias DR6/DR7 without CR4.DE; with it they are #UD (ENODEV).
        assert_eq!(get_debugreg(&p, 4), get_debugreg(&p, 6));
        assert_eq!(get_debugreg(&p, 5), get_debugreg(&p, 7));
        cr4_write(&mut p, CR4_DE);
        assert_eq!(get_debugreg(&p, 4), Err(Errno::ENODEV));
        assert_eq!(set_debugreg(&mut p, 5, 0), Err(Errno::ENODEV));
        assert_eq!(set_debugreg(&mut p, 7, 0x20002), Ok(()));
        assert_eq!((p.dr7, p.dr7_emul), (0x20400, 2));
        assert_eq!(get_debugreg(&p, 7), Ok(0x20402));
        assert!(!p.dr7_active());
        assert_eq!(set_debugreg(&mut p, 8, 0), Err(Errno::ENODEV));
        assert_eq!(get_debugreg(&p, 8), Err(Errno::ENODEV));
        // A #DB's status bits accumulate in the guest's DR6.
        let mut p = PrivRegs::default();
        dr6_on_debug_trap(&mut p, 0xFFFF_4FF1);
        assert_eq!(p.dr6, 0xFFFF_4FF1);
    }

    #[test]
    fn io_privilege_and_unowned_ports() {
        assert!(iopl_ok(true, false, 1));
        assert!(!iopl_ok(true, false, 0));
        assert!(iopl_ok(true, true, 0));
        assert!(!iopl_ok(false, false, 1));
        assert!(iopl_ok(false, false, 3));
        let mut p = PrivRegs::default();
        assert_eq!(unowned_port_read(&p, 0x60, 1), 0xFF);
        assert_eq!(unowned_port_read(&p, 0xCFC, 4), 0xFFFF_FFFF);
        assert_eq!(unowned_port_read(&p, 0x3F8, 2), 0xFFFF);
        unowned_port_write(&mut p, 0xCF8, 4, 0x8000_0000);
        assert_eq!(unowned_port_read(&p, 0xCF8, 4), 0x8000_0000);
        // Only a dword reaches the PCI address latch.
        unowned_port_write(&mut p, 0xCF8, 1, 0);
        assert_eq!(unowned_port_read(&p, 0xCF8, 1), 0xFF);
        unowned_port_write(&mut p, 0x70, 1, 0x8A);
        assert_eq!(unowned_port_read(&p, 0x70, 1), 0x8A);
        assert_eq!(unowned_port_read(&p, 0x71, 1), 0xFF);
        assert_eq!(unowned_port_read(&p, 0x70, 2), 0xFF8A);
        unowned_port_write(&mut p, 0x80, 1, 0x12);
        assert_eq!(p, PrivRegs { pci_cf8: 0x8000_0000, cmos_index: 0x8A, ..PrivRegs::default() });
    }
}
