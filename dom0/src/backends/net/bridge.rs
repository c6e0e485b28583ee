//! dom0's learning bridge (`xenbr0`): the switch joining every vif and the virtio-net uplink,
//! as Linux's bridge does for Xen's dom0. It learns which port each source MAC address was
//! seen on, sends a frame to a destination it knows on that port alone, floods one it does not
//! know (and broadcasts, multicasts) to every port but the one it came in on, and forgets an
//! address not heard from for [`AGE_NS`] or whose port went away.
//!
//! A guest is a hostile peer here too: the table is bounded ([`MAX_ENTRIES`]; when full the
//! stalest entry makes room), and a vif may only send from its own MAC (the caller checks
//! that, as Xen's antispoof rules would), so no guest can steal another's traffic by
//! claiming its address. Hardware-free, host-tested: it decides where a frame goes and the
//! caller moves it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A port of the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    /// dom0's virtio-net NIC (QEMU's user network).
    Uplink,
    /// A guest's vif: (domain id, device id).
    Vif(u16, u32),
}

/// How long an address is remembered without a frame from it (Linux's bridge default).
pub const AGE_NS: u64 = 300_000_000_000;
/// Most addresses the table holds.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct Entry {
    port: Port,
    seen_ns: u64,
}

/// The bridge: its ports and what it learned.
#[derive(Debug, Default)]
pub struct Bridge {
    ports: Vec<Port>,
    table: BTreeMap<[u8; 6], Entry>,
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To one port.
    One(Port),
    /// To each of these ports.
    Flood(Vec<Port>),
    /// Nowhere (runt frame, or the destination is on the port it came from).
    Drop,
}

impl Bridge {
    /// Joins `port` to the bridge.
    pub fn add_port(&mut self, port: Port) {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
    }

    /// Takes `port` out, with every address learned on it.
    pub fn remove_port(&mut self, port: Port) {
        self.ports.retain(|&p| p != port);
        self.table.retain(|_, e| e.port != port);
    }

    /// The ports joined.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Addresses learned.
    pub fn learned(&self) -> usize {
        self.table.len()
    }

    /// Where the bridge has `mac` (if it knows, and the entry is fresh at `now_ns`).
    pub fn lookup(&self, mac: &[u8; 6], now_ns: u64) -> Option<Port> {
        self.table.get(mac).filter(|e| now_ns.saturating_sub(e.seen_ns) < AGE_NS).map(|e| e.port)
    }

    /// Forgets addresses not heard from for [`AGE_NS`].
    pub fn age(&mut self, now_ns: u64) {
        self.table.retain(|_, e| now_ns.saturating_sub(e.seen_ns) < AGE_NS);
    }

    fn learn(&mut self, mac: [u8; 6], port: Port, now_ns: u64) {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return; // A multicast or null source is no station.
        }
        if !self.table.contains_key(&mac) && self.table.len() >= MAX_ENTRIES {
            self.age(now_ns);
            if self.table.len() >= MAX_ENTRIES
                && let Some(oldest) =
                    self.table.iter().min_by_key(|(_, e)| e.seen_ns).map(|(m, _)| *m)
            {
                self.table.remove(&oldest);
            }
        }
        self.table.insert(mac, Entry { port, seen_ns: now_ns });
    }

    /// Learns the source of `frame` (from `ingress`) and says where it goes.
    pub fn forward(&mut self, ingress: Port, frame: &[u8], now_ns: u64) -> Forward {
        if frame.len() < 14 || !self.ports.contains(&ingress) {
            return Forward::Drop;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        let mut src = [0u8; 6];
        src.copy_from_slice(&frame[6..12]);
        self.learn(src, ingress, now_ns);
        if dst[0] & 1 == 0
            && let Some(p) = self.lookup(&dst, now_ns)
        {
            return if p == ingress { Forward::Drop } else { Forward::One(p) };
        }
        Forward::Flood(self.ports.iter().copied().filter(|&p| p != ingress).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
    const B: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];
    const GW: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];
    const BCAST: [u8; 6] = [0xff; 6];

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        f
    }

    fn bridge() -> Bridge {
        let mut b = Bridge::default();
        b.add_port(Port::Uplink);
        b.add_port(Port::Vif(1, 0));
        b.add_port(Port::Vif(2, 0));
        b
    }

    #[test]
    fn unknown_and_broadcast_destinations_flood_all_but_the_ingress() {
        let mut b = bridge();
        assert_eq!(
            b.forward(Port::Vif(1, 0), &frame(BCAST, A), 0),
            Forward::Flood(vec![Port::Uplink, Port::Vif(2, 0)])
        );
        assert_eq!(
            b.forward(Port::Uplink, &frame(B, GW), 1),
            Forward::Flood(vec![Port::Vif(1, 0), Port::Vif(2, 0)])
        );
    }

    #[test]
    fn learned_destinations_go_to_one_port() {
        let mut b = bridge();
        b.forward(Port::Vif(1, 0), &frame(BCAST, A), 0);
        b.forward(Port::Uplink, &frame(A, GW), 1);
        assert_eq!(b.forward(Port::Vif(2, 0), &frame(A, B), 2), Forward::One(Port::Vif(1, 0)));
        assert_eq!(b.forward(Port::Vif(1, 0), &frame(GW, A), 3), Forward::One(Port::Uplink));
        assert_eq!(b.forward(Port::Vif(1, 0), &frame(B, A), 4), Forward::One(Port::Vif(2, 0)));
        // A station that moved is learned on its new port.
        b.forward(Port::Uplink, &frame(BCAST, A), 5);
        assert_eq!(b.lookup(&A, 6), Some(Port::Uplink));
        // A frame for a station on the port it came from goes nowhere.
        assert_eq!(b.forward(Port::Uplink, &frame(A, GW), 7), Forward::Drop);
        assert_eq!(b.learned(), 3);
    }

    #[test]
    fn addresses_age_out_and_leave_with_their_port() {
        let mut b = bridge();
        b.forward(Port::Vif(1, 0), &frame(BCAST, A), 0);
        b.forward(Port::Vif(2, 0), &frame(BCAST, B), AGE_NS / 2);
        assert_eq!(b.lookup(&A, AGE_NS - 1), Some(Port::Vif(1, 0)));
        assert_eq!(b.lookup(&A, AGE_NS), None, "stale");
        assert!(matches!(b.forward(Port::Uplink, &frame(A, GW), AGE_NS), Forward::Flood(_)));
        b.age(AGE_NS);
        assert_eq!(b.lookup(&B, AGE_NS), Some(Port::Vif(2, 0)));
        b.remove_port(Port::Vif(2, 0));
        assert_eq!(b.lookup(&B, AGE_NS), None);
        assert_eq!(b.forward(Port::Vif(2, 0), &frame(A, B), AGE_NS), Forward::Drop, "gone");
        assert_eq!(b.ports(), &[Port::Uplink, Port::Vif(1, 0)]);
    }

    #[test]
    fn the_table_is_bounded_and_ignores_multicast_sources() {
        let mut b = bridge();
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            let mut m = [0x02, 0, 0, 0, 0, 0];
            m[2..].copy_from_slice(&i.to_be_bytes());
            b.forward(Port::Uplink, &frame(BCAST, m), u64::from(i));
        }
        assert_eq!(b.learned(), MAX_ENTRIES);
        // The stalest went first.
        assert_eq!(b.lookup(&[0x02, 0, 0, 0, 0, 0], 2000), None);
        let mut b = bridge();
        b.forward(Port::Uplink, &frame(A, BCAST), 0);
        assert_eq!(b.learned(), 0);
        assert_eq!(b.forward(Port::Uplink, &[0u8; 13], 0), Forward::Drop, "runt");
    }
}
