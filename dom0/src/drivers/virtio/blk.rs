//! The virtio-blk disk dom0 drives (`virtio-drivers`' `VirtIOBlk` over the PCI transport),
//! interrupt-driven: a request is queued, dom0 blocks until the device's line fires as an
//! event (whose handler reads the device's status and gives the EOI: `drivers::irq`), and
//! completes the request.
//! Errors (a device status, a timeout) come back as [`DiskError`]; none panics dom0.
//!
//! This is what blkback (`backends::blk`) sits on: [`Disk::read`], [`Disk::write`] and
//! [`Disk::flush`] on 512-byte sectors, with buffers anywhere in dom0's memory (given to the
//! device in place when machine-contiguous, bounced otherwise up to `hal::BOUNCE_MAX`;
//! `dma::alloc` buffers are always in place).

use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;

use super::hal::{self, XenHal};
use crate::drivers::irq::DeviceIrq;
use crate::drivers::pci::Bdf;

/// How long a request may take before it is reported as failed.
const REQUEST_TIMEOUT_NS: u64 = 5_000_000_000;

/// Why a disk request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The buffer is empty or not a whole number of sectors.
    BadLength,
    /// Beyond the end of the disk.
    OutOfRange,
    /// Neither machine-contiguous nor small enough to bounce (`hal::BOUNCE_MAX`).
    BadBuffer,
    /// The device answered with an error.
    Device(virtio_drivers::Error),
    /// No completion within `REQUEST_TIMEOUT_NS`.
    Timeout,
    /// An earlier request timed out and the device was stopped.
    Stopped,
}

/// A virtio-blk disk.
pub struct Disk {
    dev: VirtIOBlk<XenHal, PciTransport>,
    irq: DeviceIrq,
    pub bdf: Bdf,
    /// Interrupts taken so far.
    pub interrupts: u64,
    /// A request timed out: the device was stopped.
    stopped: bool,
}

impl Disk {
    /// Initialises the device behind `transport`, interrupts on `irq`.
    pub fn new(transport: PciTransport, irq: DeviceIrq, bdf: Bdf) -> Result<Self, DiskError> {
        let mut dev = VirtIOBlk::<XenHal, _>::new(transport).map_err(DiskError::Device)?;
        dev.enable_interrupts();
        Ok(Disk { dev, irq, bdf, interrupts: 0, stopped: false })
    }

    /// Size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.dev.capacity()
    }

    pub fn is_read_only(&self) -> bool {
        self.dev.readonly()
    }

    /// The interrupt line the disk uses.
    pub fn irq(&self) -> &DeviceIrq {
        &self.irq
    }

    fn check(&self, sector: u64, va: u64, len: usize) -> Result<(), DiskError> {
        if self.stopped {
            return Err(DiskError::Stopped);
        }
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(DiskError::BadLength);
        }
        if !hal::can_share(va, len) {
            return Err(DiskError::BadBuffer);
        }
        let n = (len / SECTOR_SIZE) as u64;
        if sector.checked_add(n).is_none_or(|end| end > self.sectors()) {
            return Err(DiskError::OutOfRange);
        }
        Ok(())
    }

    /// Takes the device's pending interrupt (the line's handler read its status already).
    pub fn service_interrupt(&mut self) {
        if self.irq.take() {
            self.interrupts += 1;
        }
    }

    /// Blocks until request `token` is done (by its interrupt).
    fn wait_for(&mut self, token: u16) -> Result<(), DiskError> {
        let deadline = pv_guest::time::now_ns() + REQUEST_TIMEOUT_NS;
        loop {
            self.service_interrupt();
            if self.dev.peek_used() == Some(token) {
                return Ok(());
            }
            if !self.irq.wait(deadline) {
                return Err(DiskError::Timeout);
            }
        }
    }

    /// Reads sectors from `sector` into `buf` (a whole number of sectors).
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.check(sector, buf.as_ptr() as u64, buf.len())?;
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        #[allow(unsafe_code)]
        // SAFETY: `req`, `buf` and `resp` stay borrowed here, untouched, until the request
        // completes (`wait_for`) or, on a timeout, until the device is reset: a timed-out
        // request is not left behind with the buffers going away (see `abandon`).
        let token = unsafe { self.dev.read_blocks_nb(sector as usize, &mut req, buf, &mut resp) }
            .map_err(DiskError::Device)?;
        if let Err(e) = self.wait_for(token) {
            self.abandon();
            return Err(e);
        }
        #[allow(unsafe_code)]
        // SAFETY: the same buffers as submitted, and the request is complete.
        unsafe { self.dev.complete_read_blocks(token, &req, buf, &mut resp) }
            .map_err(DiskError::Device)
    }

    /// Writes `buf` (a whole number of sectors) at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.check(sector, buf.as_ptr() as u64, buf.len())?;
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        #[allow(unsafe_code)]
        // SAFETY: as in `read`.
        let token = unsafe { self.dev.write_blocks_nb(sector as usize, &mut req, buf, &mut resp) }
            .map_err(DiskError::Device)?;
        if let Err(e) = self.wait_for(token) {
            self.abandon();
            return Err(e);
        }
        #[allow(unsafe_code)]
        // SAFETY: the same buffers as submitted, and the request is complete.
        unsafe { self.dev.complete_write_blocks(token, &req, buf, &mut resp) }
            .map_err(DiskError::Device)
    }

    /// Makes the writes so far durable (a no-op for a device without a write cache).
    pub fn flush(&mut self) -> Result<(), DiskError> {
        if self.stopped {
            return Err(DiskError::Stopped);
        }
        // The crate's flush waits by watching the used ring (the one request not waited for
        // by its interrupt; flushes are rare); its interrupt is taken afterwards.
        let r = self.dev.flush().map_err(DiskError::Device);
        self.service_interrupt();
        r
    }

    /// A request did not complete in time: the device may still write into buffers about to
    /// go away, so its bus mastering is turned off (it can reach no memory any more) and every
    /// later request fails.
    fn abandon(&mut self) {
        log::warn!("virtio-blk {}: request timed out; the disk is stopped", self.bdf);
        self.dev.disable_interrupts();
        stop_dma(self.bdf);
        self.stopped = true;
    }
}

/// Turns off a device's bus mastering: no DMA from it from now on.
pub fn stop_dma(bdf: Bdf) {
    use crate::drivers::pci::{CMD_BUS_MASTER, ConfigSpace, PortCam, REG_COMMAND};
    let mut cam = PortCam;
    let cmd = cam.read(bdf, REG_COMMAND);
    cam.write(bdf, REG_COMMAND, cmd & 0xFFFF & !u32::from(CMD_BUS_MASTER));
}
