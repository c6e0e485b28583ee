//! The `smoltcp` device over a [`Netfront`]: received frames are handed over as copies, and a
//! frame smoltcp builds is copied into a free transmit slot. With `csum_offload`, smoltcp
//! leaves the TCP and UDP checksums of what it sends to the back end (`NETTXF_csum_blank`),
//! as a NIC with checksum offload would; it still verifies the checksums of what it receives.

use alloc::vec::Vec;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::{MTU_FRAME, Netfront};

/// A netfront as smoltcp's device.
pub struct NetDevice {
    pub nf: Netfront,
    pub csum_offload: bool,
}

/// A received frame.
pub struct Rx(Vec<u8>);

/// Room to send one frame.
pub struct Tx<'a>(&'a mut NetDevice);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = alloc::vec![0u8; len];
        let r = f(&mut buf);
        let blank = self.0.csum_offload && carries_tcp_or_udp(&buf);
        // `transmit` only hands out a token when a slot is free; a frame over the MTU is
        // smoltcp's bug and is dropped like one a full NIC drops.
        let _ = self.0.nf.send(&buf, blank);
        r
    }
}

/// Whether `frame` is IPv4 carrying TCP or UDP: the only checksums left blank (smoltcp makes
/// the IP, ICMP and ARP ones itself).
fn carries_tcp_or_udp(frame: &[u8]) -> bool {
    frame.len() > 23 && frame[12..14] == [0x08, 0x00] && matches!(frame[23], 6 | 17)
}

impl phy::Device for NetDevice {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.nf.recv()?;
        Some((Rx(f), Tx(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if self.nf.can_send() { Some(Tx(self)) } else { None }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU_FRAME;
        caps.max_burst_size = Some(super::TX_PAGES * 2);
        if self.csum_offload {
            caps.checksum.tcp = Checksum::Rx;
            caps.checksum.udp = Checksum::Rx;
        }
        caps
    }
}
