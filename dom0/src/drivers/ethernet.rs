//! The few Ethernet frames dom0's NIC self-test speaks, built and parsed by hand
//! (hardware-free, host-tested): an ARP request and its reply, an IPv4 ICMP echo request and
//! its reply, with the Internet checksum. A real stack (TCP) comes with smoltcp; this is only
//! enough to prove frames go out and come back through QEMU's user network, whose gateway
//! (10.0.2.2) answers ARP and ping.

use alloc::vec::Vec;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xFF; 6];

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let word =
            if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn ether(dst: [u8; 6], src: [u8; 6], ty: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ty.to_be_bytes());
    f
}

/// Who has `target_ip`? Tell `my_ip` (broadcast).
pub fn arp_request(my_mac: [u8; 6], my_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut f = ether(BROADCAST, my_mac, ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&my_mac);
    f.extend_from_slice(&my_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f
}

/// If `frame` is an ARP reply telling `ip`'s address to us, that MAC address.
pub fn parse_arp_reply(frame: &[u8], ip: [u8; 4]) -> Option<[u8; 6]> {
    if frame.len() < 42 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_ARP {
        return None;
    }
    let a = &frame[14..42];
    if a[..6] != [0, 1, 0x08, 0x00, 6, 4] || a[6..8] != [0, 2] || a[14..18] != ip {
        return None;
    }
    a[8..14].try_into().ok()
}

/// An ICMP echo request from (`my_mac`, `my_ip`) to (`dst_mac`, `dst_ip`).
pub fn icmp_echo_request(
    my_mac: [u8; 6],
    my_ip: [u8; 4],
    dst_mac: [u8; 6],
    dst_ip: [u8; 4],
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = ether(dst_mac, my_mac, ETHERTYPE_IPV4);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 1; // ICMP
    ip[12..16].copy_from_slice(&my_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut icmp = Vec::with_capacity(8 + payload.len());
    icmp.extend_from_slice(&[8, 0, 0, 0]);
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

/// If `frame` is an ICMP echo reply from `from_ip` with `ident`, its sequence number (the
/// IP and ICMP checksums are verified).
pub fn parse_echo_reply(frame: &[u8], from_ip: [u8; 4], ident: u16) -> Option<u16> {
    if frame.len() < 14 + 20 + 8 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl + 8 || total > ip.len() || ip[9] != 1 {
        return None;
    }
    if ip[12..16] != from_ip || checksum(&ip[..ihl]) != 0 {
        return None;
    }
    let icmp = &ip[ihl..total];
    if icmp[0] != 0 || checksum(icmp) != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != ident {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const GW: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];
    const MY_IP: [u8; 4] = [10, 0, 2, 15];
    const GW_IP: [u8; 4] = [10, 0, 2, 2];

    #[test]
    fn checksum_of_rfc1071_example() {
        // The worked example of RFC 1071 section 3: sum 0xddf2, checksum its complement.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(checksum(&[0xFF]), !0xFF00);
    }

    #[test]
    fn arp_round_trip() {
        let req = arp_request(ME, MY_IP, GW_IP);
        assert_eq!(req.len(), 42);
        assert_eq!(&req[..6], &BROADCAST);
        // The gateway's reply: the request with opcode 2, sender and target swapped.
        let mut rep = ether(ME, GW, ETHERTYPE_ARP);
        rep.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        rep.extend_from_slice(&GW);
        rep.extend_from_slice(&GW_IP);
        rep.extend_from_slice(&ME);
        rep.extend_from_slice(&MY_IP);
        assert_eq!(parse_arp_reply(&rep, GW_IP), Some(GW));
        assert_eq!(parse_arp_reply(&rep, MY_IP), None, "not about that address");
        assert_eq!(parse_arp_reply(&req, GW_IP), None, "a request is no reply");
        assert_eq!(parse_arp_reply(&rep[..30], GW_IP), None);
    }

    #[test]
    fn echo_round_trip() {
        let req = icmp_echo_request(ME, MY_IP, GW, GW_IP, 0x1234, 7, b"xen-core");
        assert_eq!(checksum(&req[14..34]), 0, "IP header checksum");
        assert_eq!(checksum(&req[34..]), 0, "ICMP checksum");
        // The reply: addresses swapped, type 0, checksums recomputed.
        let mut rep = req.clone();
        rep[0..6].copy_from_slice(&ME);
        rep[6..12].copy_from_slice(&GW);
        rep[14 + 12..14 + 16].copy_from_slice(&GW_IP);
        rep[14 + 16..14 + 20].copy_from_slice(&MY_IP);
        rep[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&rep[14..34]);
        rep[24..26].copy_from_slice(&c.to_be_bytes());
        rep[34] = 0;
        rep[36..38].copy_from_slice(&[0, 0]);
        let c = checksum(&rep[34..]);
        rep[36..38].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_echo_reply(&rep, GW_IP, 0x1234), Some(7));
        assert_eq!(parse_echo_reply(&rep, GW_IP, 0x1235), None, "another identifier");
        assert_eq!(parse_echo_reply(&req, MY_IP, 0x1234), None, "a request is no reply");
        let mut bad = rep.clone();
        bad[40] ^= 1;
        assert_eq!(parse_echo_reply(&bad, GW_IP, 0x1234), None, "corrupted payload");
        // Slirp may pad short frames to 60 bytes: trailing bytes past the IP length are fine.
        let mut padded = rep.clone();
        padded.resize(80, 0);
        assert_eq!(parse_echo_reply(&padded, GW_IP, 0x1234), Some(7));
    }
}
