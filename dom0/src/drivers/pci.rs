//! PCI: configuration space, enumeration and BARs, as dom0 reaches them on the machine Xen
//! hands it. Configuration space is the PC's mechanism #1 (address at port 0xCF8, data at
//! 0xCFC), reached with dom0's I/O privilege: each `in`/`out` is emulated by the hypervisor,
//! which lets dom0 through to the real ports ([`PortCam`], built for the machine only).
//!
//! Hardware-free and host-tested over any [`ConfigSpace`]: walking bus 0 (QEMU's `pc`
//! machine puts every device there) into [`Function`]s, decoding BARs (I/O, 32- and 64-bit
//! memory, sized by the usual write-all-ones probe with decoding off), and the interrupt line
//! and pin the firmware assigned. The device's memory BARs are machine addresses dom0 maps
//! through `DOMID_IO` (`drivers::dma`); the interrupt line is the GSI it asks the hypervisor
//! for (`drivers::irq`).

use alloc::vec::Vec;

/// Configuration-space registers used here.
pub const REG_ID: u8 = 0x00;
pub const REG_COMMAND: u8 = 0x04;
pub const REG_CLASS: u8 = 0x08;
pub const REG_HEADER: u8 = 0x0C;
pub const REG_BAR0: u8 = 0x10;
pub const REG_INTERRUPT: u8 = 0x3C;
/// Command register: I/O and memory decoding, bus mastering (DMA), INTx disabled.
pub const CMD_IO: u16 = 1 << 0;
pub const CMD_MEMORY: u16 = 1 << 1;
pub const CMD_BUS_MASTER: u16 = 1 << 2;
pub const CMD_INTX_DISABLE: u16 = 1 << 10;

/// A function's address on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Dword access to configuration space. `offset` is dword aligned (the low two bits are
/// ignored, as mechanism #1 ignores them).
pub trait ConfigSpace {
    fn read(&self, bdf: Bdf, offset: u8) -> u32;
    fn write(&mut self, bdf: Bdf, offset: u8, value: u32);
}

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Not implemented (reads zero and sizes to zero).
    None,
    Io {
        port: u32,
        size: u32,
    },
    Memory {
        addr: u64,
        size: u64,
        prefetchable: bool,
        is_64bit: bool,
    },
}

/// Decodes a BAR from its value(s) and what reading them back gave after writing all ones
/// (`hi`/`hi_probe` only matter for a 64-bit memory BAR).
pub fn decode_bar(lo: u32, lo_probe: u32, hi: u32, hi_probe: u32) -> Bar {
    if lo_probe == 0 {
        return Bar::None;
    }
    if lo & 1 == 1 {
        let mask = lo_probe & !0x3;
        // I/O BARs may implement only 16 address bits: the upper ones read back zero.
        let mask = if mask & 0xFFFF_0000 == 0 { mask | 0xFFFF_0000 } else { mask };
        return Bar::Io { port: lo & !0x3, size: (!mask).wrapping_add(1) };
    }
    let is_64bit = (lo >> 1) & 0x3 == 0x2;
    let prefetchable = lo & 0x8 != 0;
    let (addr, mask) = if is_64bit {
        (
            (u64::from(hi) << 32) | u64::from(lo & !0xF),
            (u64::from(hi_probe) << 32) | u64::from(lo_probe & !0xF),
        )
    } else {
        (u64::from(lo & !0xF), 0xFFFF_FFFF_0000_0000 | u64::from(lo_probe & !0xF))
    };
    Bar::Memory { addr, size: (!mask).wrapping_add(1), prefetchable, is_64bit }
}

/// One PCI function as enumeration found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass, programming interface.
    pub class: [u8; 3],
    pub bars: [Bar; 6],
    /// The interrupt line the firmware routed INTx to (an ISA IRQ, which is the GSI on the
    /// PC's IOAPIC), and the pin (1 = INTA; 0 = none).
    pub irq_line: u8,
    pub irq_pin: u8,
}

impl Function {
    /// The memory BARs' machine ranges (`start`, `len`): what dom0 may map of this device.
    pub fn memory_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bars.iter().filter_map(|b| match *b {
            Bar::Memory { addr, size, .. } if size > 0 => Some((addr, size)),
            _ => None,
        })
    }
}

/// A register's value and what it reads after writing all ones (then restored).
fn size_probe(cs: &mut impl ConfigSpace, bdf: Bdf, reg: u8) -> (u32, u32) {
    let v = cs.read(bdf, reg);
    cs.write(bdf, reg, u32::MAX);
    let p = cs.read(bdf, reg);
    cs.write(bdf, reg, v);
    (v, p)
}

/// Reads (and sizes) the six BARs of a type-0 header.
fn read_bars(cs: &mut impl ConfigSpace, bdf: Bdf) -> [Bar; 6] {
    let cmd = cs.read(bdf, REG_COMMAND);
    // Decoding off while BARs hold all ones, so the device answers no stray address.
    cs.write(bdf, REG_COMMAND, cmd & !u32::from(CMD_IO | CMD_MEMORY));
    let mut bars = [Bar::None; 6];
    let mut i = 0;
    while i < 6 {
        let reg = REG_BAR0 + 4 * i as u8;
        let (lo, lo_probe) = size_probe(cs, bdf, reg);
        let is_64 = lo & 1 == 0 && (lo >> 1) & 3 == 2 && i < 5;
        let (hi, hi_probe) = if is_64 { size_probe(cs, bdf, reg + 4) } else { (0, 0) };
        bars[i] = decode_bar(lo, lo_probe, hi, hi_probe);
        i += if is_64 { 2 } else { 1 };
    }
    cs.write(bdf, REG_COMMAND, cmd);
    bars
}

/// Reads one function's header, or `None` if nothing answers there.
pub fn probe(cs: &mut impl ConfigSpace, bdf: Bdf) -> Option<Function> {
    let id = cs.read(bdf, REG_ID);
    let vendor = id as u16;
    if vendor == 0xFFFF || vendor == 0 {
        return None;
    }
    let class = cs.read(bdf, REG_CLASS);
    let header = (cs.read(bdf, REG_HEADER) >> 16) as u8 & 0x7F;
    // Bridges (header types 1 and 2) have other registers where a type 0 has BARs 2-5.
    let bars = if header == 0 { read_bars(cs, bdf) } else { [Bar::None; 6] };
    let int = cs.read(bdf, REG_INTERRUPT);
    Some(Function {
        bdf,
        vendor,
        device: (id >> 16) as u16,
        class: [(class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8],
        bars,
        irq_line: int as u8,
        irq_pin: (int >> 8) as u8,
    })
}

/// Every function on bus 0.
pub fn enumerate(cs: &mut impl ConfigSpace) -> Vec<Function> {
    let mut found = Vec::new();
    for device in 0..32 {
        let f0 = Bdf { bus: 0, device, function: 0 };
        let Some(first) = probe(cs, f0) else { continue };
        let multi = (cs.read(f0, REG_HEADER) >> 16) & 0x80 != 0;
        found.push(first);
        if multi {
            for function in 1..8 {
                if let Some(f) = probe(cs, Bdf { bus: 0, device, function }) {
                    found.push(f);
                }
            }
        }
    }
    found
}

/// Sets bits of the command register (memory decoding, bus mastering).
pub fn enable(cs: &mut impl ConfigSpace, bdf: Bdf, bits: u16) {
    let v = cs.read(bdf, REG_COMMAND);
    cs.write(bdf, REG_COMMAND, (v & 0xFFFF & !u32::from(CMD_INTX_DISABLE)) | u32::from(bits));
}

/// Configuration mechanism #1 through ports 0xCF8/0xCFC (dom0 must hold I/O privilege).
#[cfg(target_os = "none")]
#[derive(Clone, Copy, Debug, Default)]
pub struct PortCam;

#[cfg(target_os = "none")]
fn cf8(bdf: Bdf, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(bdf.bus) << 16)
        | (u32::from(bdf.device & 0x1F) << 11)
        | (u32::from(bdf.function & 7) << 8)
        | u32::from(offset & 0xFC)
}

#[cfg(target_os = "none")]
impl ConfigSpace for PortCam {
    fn read(&self, bdf: Bdf, offset: u8) -> u32 {
        let value: u32;
        #[allow(unsafe_code)]
        // SAFETY: port I/O to the PCI configuration ports, which the hypervisor emulates for
        // dom0 (its IOPL is raised at start): no memory is touched. dom0 is single-threaded
        // and never re-enters this pair from an event handler, so nothing comes between the
        // address write and the data read.
        unsafe {
            core::arch::asm!(
                "out dx, eax", "mov dx, 0xCFC", "in eax, dx",
                inout("eax") cf8(bdf, offset) => value, inout("dx") 0xCF8u16 => _,
                options(nomem, nostack, preserves_flags)
            );
        }
        value
    }

    fn write(&mut self, bdf: Bdf, offset: u8, value: u32) {
        #[allow(unsafe_code)]
        // SAFETY: as in `read`.
        unsafe {
            core::arch::asm!(
                "out dx, eax", "mov dx, 0xCFC", "mov eax, {v:e}", "out dx, eax",
                v = in(reg) value, inout("eax") cf8(bdf, offset) => _, inout("dx") 0xCF8u16 => _,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
}

/// The same access for `virtio-drivers`' PCI transport.
#[cfg(target_os = "none")]
impl virtio_drivers::transport::pci::bus::ConfigurationAccess for PortCam {
    fn read_word(&self, df: virtio_drivers::transport::pci::bus::DeviceFunction, off: u8) -> u32 {
        self.read(Bdf { bus: df.bus, device: df.device, function: df.function }, off)
    }

    fn write_word(
        &mut self,
        df: virtio_drivers::transport::pci::bus::DeviceFunction,
        off: u8,
        data: u32,
    ) {
        self.write(Bdf { bus: df.bus, device: df.device, function: df.function }, off, data)
    }

    #[allow(unsafe_code)]
    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// A bus of fake functions: registers, and each BAR's size mask (what an all-ones write
    /// leaves readable).
    #[derive(Default)]
    struct FakeBus {
        regs: BTreeMap<(Bdf, u8), u32>,
        masks: BTreeMap<(Bdf, u8), u32>,
    }

    impl ConfigSpace for FakeBus {
        fn read(&self, bdf: Bdf, offset: u8) -> u32 {
            self.regs.get(&(bdf, offset & 0xFC)).copied().unwrap_or(u32::MAX)
        }
        fn write(&mut self, bdf: Bdf, offset: u8, value: u32) {
            let off = offset & 0xFC;
            if !self.regs.contains_key(&(bdf, off)) {
                return;
            }
            let v = match self.masks.get(&(bdf, off)) {
                Some(&m) => {
                    let old = self.regs[&(bdf, off)];
                    (value & m) | (old & !m)
                }
                None => value,
            };
            self.regs.insert((bdf, off), v);
        }
    }

    fn bdf(device: u8, function: u8) -> Bdf {
        Bdf { bus: 0, device, function }
    }

    fn add(bus: &mut FakeBus, at: Bdf, id: u32, header: u32, bars: &[(u32, u32)]) {
        bus.regs.insert((at, REG_ID), id);
        bus.regs.insert((at, REG_COMMAND), 0x0007);
        bus.regs.insert((at, REG_CLASS), 0x0100_0000);
        bus.regs.insert((at, REG_HEADER), header << 16);
        for i in 0..6u8 {
            bus.regs.insert((at, REG_BAR0 + 4 * i), 0);
            bus.masks.insert((at, REG_BAR0 + 4 * i), 0);
        }
        for (i, &(v, m)) in bars.iter().enumerate() {
            bus.regs.insert((at, REG_BAR0 + 4 * i as u8), v);
            bus.masks.insert((at, REG_BAR0 + 4 * i as u8), m);
        }
        bus.regs.insert((at, REG_INTERRUPT), 0x0000_010B);
    }

    #[test]
    fn bars_decode_as_the_spec_says() {
        assert_eq!(decode_bar(0, 0, 0, 0), Bar::None);
        assert_eq!(decode_bar(0xC041, 0xFFFF_FFC1, 0, 0), Bar::Io { port: 0xC040, size: 64 });
        assert_eq!(decode_bar(0xC041, 0xFFC1, 0, 0), Bar::Io { port: 0xC040, size: 64 });
        assert_eq!(
            decode_bar(0xFEBD_1000, 0xFFFF_F000, 0, 0),
            Bar::Memory { addr: 0xFEBD_1000, size: 4096, prefetchable: false, is_64bit: false }
        );
        assert_eq!(
            decode_bar(0xFE00_000C, 0xFFFF_C00C, 0x1, 0xFFFF_FFFF),
            Bar::Memory { addr: 0x1_FE00_0000, size: 16 << 10, prefetchable: true, is_64bit: true }
        );
    }

    #[test]
    fn enumeration_finds_functions_and_sizes_bars_with_decoding_off() {
        let mut bus = FakeBus::default();
        // A virtio-blk like device: an I/O BAR, a 4 KiB MMIO BAR, a 64-bit prefetchable BAR
        // in BARs 4-5.
        add(
            &mut bus,
            bdf(4, 0),
            0x1001_1AF4,
            0,
            &[
                (0xC001, 0xFFFF_FFC1),
                (0xFEBD_1000, 0xFFFF_F000),
                (0, 0),
                (0, 0),
                (0xFE00_000C, 0xFFFF_C00C),
                (0, 0xFFFF_FFFF),
            ],
        );
        // A multi-function device with a second function, and a bridge.
        add(&mut bus, bdf(1, 0), 0x7000_8086, 0x80, &[]);
        add(&mut bus, bdf(1, 1), 0x7010_8086, 0, &[(0xC041, 0xFFFF_FFF1)]);
        add(&mut bus, bdf(2, 0), 0x0001_1B36, 1, &[]);
        let found = enumerate(&mut bus);
        let ids: Vec<_> = found.iter().map(|f| (f.bdf, f.vendor, f.device)).collect();
        assert_eq!(
            ids,
            [
                (bdf(1, 0), 0x8086, 0x7000),
                (bdf(1, 1), 0x8086, 0x7010),
                (bdf(2, 0), 0x1B36, 0x0001),
                (bdf(4, 0), 0x1AF4, 0x1001)
            ]
        );
        let blk = &found[3];
        assert_eq!(blk.bars[0], Bar::Io { port: 0xC000, size: 64 });
        assert_eq!(
            blk.bars[1],
            Bar::Memory { addr: 0xFEBD_1000, size: 4096, prefetchable: false, is_64bit: false }
        );
        assert_eq!(
            blk.bars[4],
            Bar::Memory { addr: 0xFE00_0000, size: 16 << 10, prefetchable: true, is_64bit: true }
        );
        assert_eq!(blk.bars[5], Bar::None, "the upper half of a 64-bit BAR is not a BAR");
        assert_eq!(blk.memory_ranges().count(), 2);
        assert_eq!((blk.irq_line, blk.irq_pin), (11, 1));
        assert_eq!(blk.class, [1, 0, 0]);
        // BARs and the command register are as they were.
        assert_eq!(bus.read(bdf(4, 0), REG_BAR0 + 4), 0xFEBD_1000);
        assert_eq!(bus.read(bdf(4, 0), REG_COMMAND), 0x0007);
        enable(&mut bus, bdf(4, 0), CMD_BUS_MASTER | CMD_MEMORY);
        assert_eq!(bus.read(bdf(4, 0), REG_COMMAND), 0x0007);
    }
}
