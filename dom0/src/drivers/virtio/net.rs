//! The virtio-net NIC dom0 drives (`virtio-drivers`' `VirtIONetRaw` over the PCI
//! transport), interrupt-driven. Every receive buffer is one DMA page of dom0's (handed to the
//! device in place), all posted at start and re-posted as frames are taken; a frame to send
//! is copied into a DMA page with the virtio-net header in front, and its page is reclaimed
//! when the device says it is done. The device's line fires as an event (`drivers::irq`
//! reads the status and gives the EOI); [`Nic::service`] reclaims sent pages.
//!
//! What netback will sit on: [`Nic::send`] (an Ethernet frame), [`Nic::recv`] (the next frame
//! received, or `None`), [`Nic::wait`] (block until the line fires), [`Nic::mac`]. Errors are
//! values; nothing here panics dom0.

use alloc::vec::Vec;

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;

use super::hal::XenHal;
use crate::drivers::dma::{self, DmaBuf};
use crate::drivers::irq::DeviceIrq;
use crate::drivers::pci::Bdf;

/// Descriptors per queue (one receive buffer or one frame in flight each).
const QUEUE: usize = 16;
/// A frame's room: one page (an Ethernet frame of 1514 bytes plus the header fits).
const BUF: usize = 4096;

/// Why a network operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// Larger than a buffer, or empty.
    BadLength,
    /// Every transmit descriptor is in use.
    Busy,
    /// No DMA memory for a buffer.
    NoMemory,
    Device(virtio_drivers::Error),
}

fn slice(b: &DmaBuf) -> &'static mut [u8] {
    #[allow(unsafe_code)]
    // SAFETY: a DmaBuf is dom0's own pages, mapped for dom0's life; each one is owned by the
    // NIC (receive ring or a frame in flight) and reached only through this one slice at a time.
    unsafe {
        core::slice::from_raw_parts_mut(b.va as *mut u8, BUF)
    }
}

/// A virtio-net NIC.
pub struct Nic {
    dev: VirtIONetRaw<XenHal, PciTransport, QUEUE>,
    irq: DeviceIrq,
    pub bdf: Bdf,
    /// Receive buffers by token.
    rx: [Option<DmaBuf>; QUEUE],
    /// Frames in flight by token, with their length.
    tx: [Option<(DmaBuf, usize)>; QUEUE],
    /// Interrupts taken, frames sent and received so far.
    pub interrupts: u64,
    pub sent: u64,
    pub received: u64,
}

impl Nic {
    /// Initialises the device behind `transport` and posts every receive buffer.
    pub fn new(transport: PciTransport, irq: DeviceIrq, bdf: Bdf) -> Result<Self, NicError> {
        let dev = VirtIONetRaw::<XenHal, _, QUEUE>::new(transport).map_err(NicError::Device)?;
        let mut nic = Nic {
            dev,
            irq,
            bdf,
            rx: [None; QUEUE],
            tx: [None; QUEUE],
            interrupts: 0,
            sent: 0,
            received: 0,
        };
        for _ in 0..QUEUE {
            let b = dma::alloc(1).ok_or(NicError::NoMemory)?;
            nic.post(b)?;
        }
        nic.dev.enable_interrupts();
        Ok(nic)
    }

    fn post(&mut self, b: DmaBuf) -> Result<(), NicError> {
        #[allow(unsafe_code)]
        // SAFETY: the page stays in `rx` (untouched) until the device returns its token.
        let token = unsafe { self.dev.receive_begin(slice(&b)) }.map_err(NicError::Device)?;
        match self.rx.get_mut(token as usize) {
            Some(slot @ None) => {
                *slot = Some(b);
                Ok(())
            }
            _ => Err(NicError::Device(virtio_drivers::Error::WrongToken)),
        }
    }

    /// The NIC's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.dev.mac_address()
    }

    /// The interrupt line the NIC uses.
    pub fn irq(&self) -> &DeviceIrq {
        &self.irq
    }

    /// Takes the device's pending interrupt (the line's handler read its status and gave the
    /// EOI already) and reclaims the pages of sent frames.
    /// Bounded by the queue size.
    pub fn service(&mut self) {
        if self.irq.take() {
            self.interrupts += 1;
        }
        for _ in 0..QUEUE {
            let Some(token) = self.dev.poll_transmit() else { break };
            let Some((b, len)) = self.tx.get_mut(token as usize).and_then(Option::take) else {
                break;
            };
            #[allow(unsafe_code)]
            // SAFETY: the same buffer as given to `transmit_begin` for this token.
            let r = unsafe { self.dev.transmit_complete(token, &slice(&b)[..len]) };
            if let Err(e) = r {
                log::warn!("virtio-net {}: transmit completion: {e:?}", self.bdf);
            }
            dma::free(b);
        }
    }

    /// Whether a frame can be queued now (sent pages reclaimed first).
    pub fn can_send(&mut self) -> bool {
        self.service();
        self.dev.can_send()
    }

    /// Queues an Ethernet frame (without the virtio header) for sending.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NicError> {
        self.service();
        let b = dma::alloc(1).ok_or(NicError::NoMemory)?;
        let buf = slice(&b);
        let hdr = self.dev.fill_buffer_header(buf).map_err(NicError::Device)?;
        if frame.is_empty() || hdr + frame.len() > BUF {
            dma::free(b);
            return Err(NicError::BadLength);
        }
        buf[hdr..hdr + frame.len()].copy_from_slice(frame);
        let len = hdr + frame.len();
        if !self.dev.can_send() {
            dma::free(b);
            return Err(NicError::Busy);
        }
        #[allow(unsafe_code)]
        // SAFETY: the page stays in `tx` (untouched) until the device returns its token.
        let token = match unsafe { self.dev.transmit_begin(&buf[..len]) } {
            Ok(t) => t,
            Err(e) => {
                dma::free(b);
                return Err(NicError::Device(e));
            }
        };
        match self.tx.get_mut(token as usize) {
            Some(slot @ None) => *slot = Some((b, len)),
            _ => return Err(NicError::Device(virtio_drivers::Error::WrongToken)),
        }
        self.sent += 1;
        Ok(())
    }

    /// The next frame received (without the virtio header), or `None`.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.service();
        let token = self.dev.poll_receive()?;
        let b = self.rx.get_mut(token as usize).and_then(Option::take)?;
        #[allow(unsafe_code)]
        // SAFETY: the same buffer as posted for this token.
        let r = unsafe { self.dev.receive_complete(token, slice(&b)) };
        let frame = match r {
            Ok((hdr, len)) if hdr + len <= BUF => Some(slice(&b)[hdr..hdr + len].to_vec()),
            Ok(_) => None,
            Err(e) => {
                log::warn!("virtio-net {}: receive: {e:?}", self.bdf);
                None
            }
        };
        // The page goes back to the device at once (zeroed, so no old frame lingers).
        slice(&b).fill(0);
        if let Err(e) = self.post(b) {
            log::warn!("virtio-net {}: re-posting a receive buffer: {e:?}", self.bdf);
        }
        if frame.is_some() {
            self.received += 1;
        }
        frame
    }

    /// Blocks until the NIC's line fires or `deadline_ns` passes.
    pub fn wait(&self, deadline_ns: u64) -> bool {
        self.irq.wait(deadline_ns)
    }
}
