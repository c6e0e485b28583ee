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

/// Requests [`Disk::run_batch`] has in flight at most: each takes three descriptors of the
/// crate's 16-entry queue when the device has no indirect descriptors.
pub const BATCH_MAX: usize = 4;

/// One request of a batch: where, and the buffer it reads into or writes from.
pub enum BatchOp<'a> {
    Read(u64, &'a mut [u8]),
    Write(u64, &'a [u8]),
}

/// A request's header and status as the device reads and writes them, 16-aligned so the
/// header never straddles a page (it is handed over in place, never bounced).
#[repr(C, align(16))]
#[derive(Default)]
struct Slot {
    req: BlkReq,
    resp: BlkResp,
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

    /// Carries out up to [`BATCH_MAX`] reads and writes with all of them in flight at once
    /// (the device may work on them together and complete them in any order); one result
    /// each, in order. Ops past [`BATCH_MAX`] fail with `BadLength`.
    pub fn run_batch(&mut self, ops: &mut [BatchOp<'_>]) -> alloc::vec::Vec<Result<(), DiskError>> {
        let n = ops.len();
        let mut results: alloc::vec::Vec<Result<(), DiskError>> =
            (0..n).map(|_| Err(DiskError::BadLength)).collect();
        // Fixed for the batch's life: the device holds pointers into it until completion.
        let mut slots: alloc::vec::Vec<Slot> = (0..n).map(|_| Slot::default()).collect();
        let mut tokens: alloc::vec::Vec<Option<u16>> = alloc::vec![None; n];
        for (i, (op, slot)) in ops.iter_mut().zip(slots.iter_mut()).enumerate().take(BATCH_MAX) {
            let (sector, va, len) = match op {
                BatchOp::Read(s, b) => (*s, b.as_ptr() as u64, b.len()),
                BatchOp::Write(s, b) => (*s, b.as_ptr() as u64, b.len()),
            };
            if let Err(e) = self.check(sector, va, len) {
                results[i] = Err(e);
                continue;
            }
            let Slot { req, resp } = slot;
            let submitted = match op {
                #[allow(unsafe_code)]
                // SAFETY: `req`, `resp` (in `slots`) and the buffer stay borrowed, untouched,
                // and in place until the request completes below or the device is stopped
                // (`abandon`): nothing else uses them meanwhile.
                BatchOp::Read(s, b) => unsafe {
                    self.dev.read_blocks_nb(*s as usize, req, b, resp)
                },
                #[allow(unsafe_code)]
                // SAFETY: as for a read.
                BatchOp::Write(s, b) => unsafe {
                    self.dev.write_blocks_nb(*s as usize, req, b, resp)
                },
            };
            match submitted {
                Ok(t) => tokens[i] = Some(t),
                Err(e) => results[i] = Err(DiskError::Device(e)),
            }
        }
        let mut pending = tokens.iter().filter(|t| t.is_some()).count();
        let deadline = pv_guest::time::now_ns() + REQUEST_TIMEOUT_NS;
        while pending > 0 {
            self.service_interrupt();
            while let Some(t) = self.dev.peek_used() {
                let Some(i) = tokens.iter().position(|&x| x == Some(t)) else {
                    // Not a request of ours: the device is confused; stop it.
                    self.abandon();
                    return results;
                };
                tokens[i] = None;
                pending -= 1;
                let Slot { req, resp } = &mut slots[i];
                results[i] = match &mut ops[i] {
                    #[allow(unsafe_code)]
                    // SAFETY: the same buffers as submitted, and the request is complete.
                    BatchOp::Read(_, b) => unsafe {
                        self.dev.complete_read_blocks(t, req, b, resp)
                    },
                    #[allow(unsafe_code)]
                    // SAFETY: as for a read.
                    BatchOp::Write(_, b) => unsafe {
                        self.dev.complete_write_blocks(t, req, b, resp)
                    },
                }
                .map_err(DiskError::Device);
            }
            if pending > 0 && !self.irq.wait(deadline) {
                self.abandon();
                for (i, t) in tokens.iter().enumerate() {
                    if t.is_some() {
                        results[i] = Err(DiskError::Timeout);
                    }
                }
                return results;
            }
        }
        results
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
