//! virtio devices over PCI, driven with the `virtio-drivers` crate: `hal` (DMA with machine
//! addresses, MMIO through `DOMID_IO`), `blk` (the disk), `net` (the NIC). [`probe`] finds
//! QEMU's virtio-blk and virtio-net among the PCI functions, binds each one's interrupt line
//! to an event channel, and brings it up; a device that fails is a log line, never a panic.

pub mod blk;
pub mod hal;
pub mod net;

use alloc::vec::Vec;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};

use self::blk::Disk;
use self::net::Nic;
use super::irq::{self, DeviceIrq};
use super::pci::{self, CMD_BUS_MASTER, CMD_MEMORY, Function, PortCam};

/// The virtio devices found.
#[derive(Default)]
pub struct Virtio {
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
}

/// The device type of a PCI function, if it is virtio.
fn device_type(f: &Function) -> Option<DeviceType> {
    let info = virtio_drivers::transport::pci::bus::DeviceFunctionInfo {
        vendor_id: f.vendor,
        device_id: f.device,
        class: f.class[0],
        subclass: f.class[1],
        prog_if: f.class[2],
        revision: 0,
        header_type: virtio_drivers::transport::pci::bus::HeaderType::Standard,
    };
    virtio_device_type(&info)
}

/// The machine address of the device's interrupt status register (its ISR capability: a
/// BAR and an offset).
fn isr_address(root: &PciRoot<PortCam>, f: &Function, df: DeviceFunction) -> Option<u64> {
    use virtio_drivers::transport::pci::bus::ConfigurationAccess;
    const CAP_VENDOR: u8 = 0x09;
    const CFG_ISR: u8 = 3;
    let cap = root
        .capabilities(df)
        .find(|c| c.id == CAP_VENDOR && (c.private_header >> 8) as u8 == CFG_ISR)?;
    let bar = PortCam.read_word(df, cap.offset + 4) as u8;
    let offset = PortCam.read_word(df, cap.offset + 8);
    match f.bars.get(usize::from(bar))? {
        pci::Bar::Memory { addr, size, .. } if u64::from(offset) < *size => {
            Some(addr + u64::from(offset))
        }
        _ => None,
    }
}

/// The device's share of its interrupt line, with its status register mapped for the line's
/// handler.
fn irq_of(root: &PciRoot<PortCam>, f: &Function, df: DeviceFunction) -> Option<DeviceIrq> {
    if f.irq_pin == 0 || f.irq_line == 0 || f.irq_line == 0xFF {
        log::warn!("virtio {}: no interrupt line routed", f.bdf);
        return None;
    }
    let Some(isr) = isr_address(root, f, df).and_then(|a| hal::mapped(a, 1)) else {
        log::warn!("virtio {}: no interrupt status register", f.bdf);
        return None;
    };
    match irq::attach(u32::from(f.irq_line), isr) {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!("virtio {}: cannot bind GSI {}: {e:?}", f.bdf, f.irq_line);
            None
        }
    }
}

/// Brings up every virtio-blk and virtio-net function of `functions`.
pub fn probe(functions: &[Function]) -> Virtio {
    let mut found = Virtio::default();
    if functions.iter().any(|f| device_type(f).is_some()) && !hal::reserve_bounce_pool() {
        log::warn!("virtio: no contiguous bounce pool: buffers must be machine-contiguous");
    }
    for f in functions {
        let Some(ty) = device_type(f) else { continue };
        if !matches!(ty, DeviceType::Block | DeviceType::Network) {
            continue;
        }
        // Memory decoding for its registers, bus mastering for its DMA.
        pci::enable(&mut PortCam, f.bdf, CMD_MEMORY | CMD_BUS_MASTER);
        if !hal::map_bars(f.memory_ranges()) {
            log::warn!("virtio {}: cannot map its registers", f.bdf);
            continue;
        }
        let mut root = PciRoot::new(PortCam);
        let df = DeviceFunction { bus: f.bdf.bus, device: f.bdf.device, function: f.bdf.function };
        let Some(line) = irq_of(&root, f, df) else { continue };
        let transport = match PciTransport::new::<hal::XenHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("virtio {}: transport: {e:?}", f.bdf);
                continue;
            }
        };
        match ty {
            DeviceType::Block => match Disk::new(transport, line, f.bdf) {
                Ok(d) => found.disks.push(d),
                Err(e) => log::warn!("virtio-blk {}: {e:?}", f.bdf),
            },
            _ => match Nic::new(transport, line, f.bdf) {
                Ok(n) => found.nics.push(n),
                Err(e) => log::warn!("virtio-net {}: {e:?}", f.bdf),
            },
        }
    }
    found
}

impl Virtio {
    /// One round of device work: every device takes its pending interrupt and each NIC
    /// reclaims the pages of frames sent. Received frames are netback's to take (its bridge
    /// reads the first NIC, within its own budget).
    pub fn round(&mut self) {
        for d in &mut self.disks {
            d.service_interrupt();
        }
        for n in &mut self.nics {
            n.service();
        }
    }
}
