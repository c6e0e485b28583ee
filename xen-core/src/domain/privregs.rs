//! The privileged registers a PV vCPU sees only through emulation (`traps::emulate`): its view
//! of CR2 and CR4, its debug registers, and the latches of ports it may touch without I/O
//! privilege (the PCI configuration address, the CMOS index). Data only: the rules that
//! change them are `traps::emulate`'s.

/// DR6 as the CPU resets it (reserved bits read as one).
pub const DR6_DEFAULT: u64 = 0xFFFF_0FF0;
/// DR7 as the CPU resets it (bit 10 reads as one).
pub const DR7_DEFAULT: u64 = 0x400;

/// A vCPU's emulated privileged registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivRegs {
    /// CR2 as the guest reads it: the address of the last page fault delivered to it, or what
    /// it wrote.
    pub cr2: u64,
    /// The guest-controlled CR4 bits it set (TSD, DE); the rest of what it reads is the
    /// hardware's.
    pub cr4: u64,
    pub dr: [u64; 4],
    pub dr6: u64,
    /// DR7 as loaded into the CPU (without I/O breakpoints).
    pub dr7: u64,
    /// The I/O-breakpoint enables of DR7, kept aside (the CPU's would be its own ports).
    pub dr7_emul: u64,
    /// The last dword written to port 0xCF8.
    pub pci_cf8: u32,
    /// The last byte written to port 0x70.
    pub cmos_index: u8,
}

impl PrivRegs {
    /// Whether DR7 enables a breakpoint the CPU must see (then DR0-3 are loaded with it).
    pub fn dr7_active(&self) -> bool {
        self.dr7 & 0xFF != 0
    }
}

impl Default for PrivRegs {
    fn default() -> Self {
        PrivRegs {
            cr2: 0,
            cr4: 0,
            dr: [0; 4],
            dr6: DR6_DEFAULT,
            dr7: DR7_DEFAULT,
            dr7_emul: 0,
            pci_cf8: 0,
            cmos_index: 0,
        }
    }
}
