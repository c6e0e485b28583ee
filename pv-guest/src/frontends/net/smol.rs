//! netfront as a link of `pv_guest::netstack` (smoltcp's device): received frames are handed
//! over as copies, a frame to send is copied into a free transmit slot. With `csum_offload`,
//! the TCP and UDP checksums of what is sent are left to the back end
//! (`NETTXF_csum_blank`), as a NIC with checksum offload would take them.

use alloc::vec::Vec;

use super::{Netfront, TX_PAGES};
use crate::netstack::Link;

/// A netfront as the stack's link.
pub struct NetDevice {
    pub nf: Netfront,
    pub csum_offload: bool,
}

/// Whether `frame` is IPv4 carrying TCP or UDP: the only checksums left blank (smoltcp makes
/// the IP, ICMP and ARP ones itself).
fn carries_tcp_or_udp(frame: &[u8]) -> bool {
    frame.len() > 23 && frame[12..14] == [0x08, 0x00] && matches!(frame[23], 6 | 17)
}

impl Link for NetDevice {
    fn recv_frame(&mut self) -> Option<Vec<u8>> {
        self.nf.recv()
    }

    fn can_send(&mut self) -> bool {
        self.nf.can_send()
    }

    fn send_frame(&mut self, frame: &[u8]) {
        let blank = self.csum_offload && carries_tcp_or_udp(frame);
        let _ = self.nf.send(frame, blank);
    }

    fn wait_until(&mut self, deadline_ns: u64) {
        // Armed: the back end's next response raises the event; if some came meanwhile,
        // there is work already.
        if self.nf.arm() {
            return;
        }
        let _ = hypercall_abi::guest::set_timer_op(deadline_ns);
        crate::events::wait();
    }

    fn fills_checksums(&self) -> bool {
        self.csum_offload
    }

    fn burst(&self) -> usize {
        TX_PAGES * 2
    }
}
