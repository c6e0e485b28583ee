//! dom0's drivers for the machine's devices (the hypervisor keeps only the interrupt
//! controllers and the timer; every other device is dom0's, as on Xen):
//! - `serial`: the line dom0 reads its input from;
//! - `pci`: configuration space (ports 0xCF8/0xCFC under dom0's I/O privilege), enumeration
//!   of bus 0, BAR decoding (hardware-free parts host-tested);
//! - `irq`: a device's interrupt line as an event channel (setup_gsi, map_pirq, bind_pirq,
//!   EOI);
//! - `dma`: DMA buffers with machine addresses, and device MMIO mapped through `DOMID_IO`;
//! - `virtio/`: QEMU's virtio-blk and virtio-net, driven with the `virtio-drivers` crate;
//! - `iobuf`: a back end's machine-contiguous I/O buffer, filled and emptied by grant copies;
//! - `ethernet`, `devtest`: the frames and the self-tests and benchmarks dom0 runs on them.
//!
//! `unsafe` here is the low-level drivers' only: single marked port accesses (`pci`),
//! mappings and DMA memory (`dma`, `virtio`), as the architecture allows dom0's drivers.

pub mod dma;
pub mod ethernet;
pub mod iobuf;
pub mod pci;
pub mod serial;

#[cfg(target_os = "none")]
pub mod devtest;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod virtio;

/// The devices dom0 drives, found at start.
#[cfg(target_os = "none")]
pub struct Devices {
    pub virtio: virtio::Virtio,
}

#[cfg(target_os = "none")]
impl Devices {
    /// Raises dom0's I/O privilege, enumerates PCI and brings up the virtio devices, printing
    /// one line per device found.
    pub fn probe() -> Self {
        use pv_guest::println;
        // Port I/O (PCI configuration space) from dom0's kernel, which runs at ring 1 as Xen
        // sees it.
        if let Err(e) = hypercall_abi::guest::physdev_set_iopl(1) {
            println!("dom0: cannot raise the I/O privilege: {e:?}");
            return Devices { virtio: virtio::Virtio::default() };
        }
        let functions = pci::enumerate(&mut pci::PortCam);
        let v = virtio::probe(&functions);
        for d in &v.disks {
            println!(
                "dom0: virtio-blk {}: {} sectors ({} MiB){}, GSI {} as pirq {} on port {}",
                d.bdf,
                d.sectors(),
                d.sectors() / 2048,
                if d.is_read_only() { ", read-only" } else { "" },
                d.irq().gsi,
                d.irq().pirq,
                d.irq().port.0
            );
        }
        for n in &v.nics {
            let m = n.mac();
            println!(
                "dom0: virtio-net {}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, GSI {} as pirq {} on port {}",
                n.bdf,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                n.irq().gsi,
                n.irq().pirq,
                n.irq().port.0
            );
        }
        println!(
            "dom0: {} PCI functions, {} virtio disk(s), {} virtio NIC(s)",
            functions.len(),
            v.disks.len(),
            v.nics.len()
        );
        Devices { virtio: v }
    }

    /// One round of device work within a budget (called by the serving loop).
    pub fn round(&mut self) {
        self.virtio.round(32);
    }
}
