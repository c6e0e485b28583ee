//! Checksum offload for the frontends: a frame sent with `NETTXF_csum_blank` carries a TCP or
//! UDP checksum field the frontend left for the "hardware" (here dom0) to fill, as Linux's
//! netfront does. dom0 fills it before the frame leaves through the bridge, so every frame on
//! the bridge has correct checksums whoever receives it (the uplink, or a frontend that said
//! `feature-no-csum-offload`). Only IPv4 TCP and UDP are offloaded (what netback advertises);
//! a blank-checksum frame of anything else is refused by the caller. The field's old contents
//! (zero, or Linux's partial pseudo-header sum) are ignored: the sum is made from scratch.
//! Hardware-free, host-tested.

/// The one's-complement sum of `data` (big-endian words, an odd last byte padded) added to
/// `sum`, not yet folded.
fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    // Fold now and then so a 64 KiB segment cannot overflow.
    (sum & 0xFFFF) + (sum >> 16)
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Why a blank checksum could not be filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumError {
    /// Not IPv4, or not TCP/UDP.
    Unsupported,
    /// Headers or lengths that do not fit the frame.
    Malformed,
}

/// Fills the TCP or UDP checksum of the IPv4 `frame` (an Ethernet frame).
pub fn fill(frame: &mut [u8]) -> Result<(), CsumError> {
    if frame.len() < 14 + 20 {
        return Err(CsumError::Malformed);
    }
    if frame[12..14] != [0x08, 0x00] {
        return Err(CsumError::Unsupported);
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return Err(CsumError::Malformed);
    }
    // A fragment past the first has no L4 header to fill.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1FFF != 0 {
        return Err(CsumError::Unsupported);
    }
    let (proto, field) = match ip[9] {
        6 => (6u8, 16),
        17 => (17u8, 6),
        _ => return Err(CsumError::Unsupported),
    };
    let l4_len = total - ihl;
    if l4_len < field + 2 || (proto == 6 && l4_len < 20) || (proto == 17 && l4_len < 8) {
        return Err(CsumError::Malformed);
    }
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&ip[12..20]);
    pseudo[9] = proto;
    pseudo[10..12].copy_from_slice(&(l4_len as u16).to_be_bytes());
    let start = 14 + ihl;
    let seg = &mut frame[start..start + l4_len];
    seg[field] = 0;
    seg[field + 1] = 0;
    let mut c = !fold(add(add(0, &pseudo), seg));
    if proto == 17 && c == 0 {
        c = 0xFFFF; // UDP: zero means "no checksum".
    }
    seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::ethernet::checksum;

    /// An Ethernet + IPv4 + TCP frame with `payload`, its TCP checksum blank.
    fn tcp_frame(payload: &[u8]) -> alloc::vec::Vec<u8> {
        let mut f = alloc::vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 2, 16]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 15]);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&4000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&7u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(payload);
        f
    }

    /// The checksum over pseudo-header and segment, as a receiver verifies it (0 when good).
    fn verify(f: &[u8]) -> u16 {
        let seg = &f[34..];
        let mut v = alloc::vec::Vec::new();
        v.extend_from_slice(&f[26..34]);
        v.extend_from_slice(&[0, 6]);
        v.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        v.extend_from_slice(seg);
        checksum(&v)
    }

    #[test]
    fn fills_tcp_from_scratch_whatever_the_field_held() {
        for payload in [&b""[..], b"odd", b"xen-core echo\n"] {
            let mut f = tcp_frame(payload);
            fill(&mut f).unwrap();
            assert_eq!(verify(&f), 0, "{payload:?}");
            let good = f.clone();
            f[50] = 0x12;
            f[51] = 0x34; // Linux leaves the pseudo-header sum there
            fill(&mut f).unwrap();
            assert_eq!(f, good);
        }
    }

    #[test]
    fn refuses_what_it_does_not_offload() {
        let mut f = tcp_frame(b"x");
        f[12] = 0x86; // IPv6 ethertype
        f[13] = 0xdd;
        assert_eq!(fill(&mut f), Err(CsumError::Unsupported));
        let mut f = tcp_frame(b"x");
        f[14 + 9] = 1; // ICMP
        assert_eq!(fill(&mut f), Err(CsumError::Unsupported));
        let mut f = tcp_frame(b"x");
        f[16..18].copy_from_slice(&2000u16.to_be_bytes()); // IP length past the frame
        assert_eq!(fill(&mut f), Err(CsumError::Malformed));
        assert_eq!(fill(&mut [0u8; 20]), Err(CsumError::Malformed));
    }

    #[test]
    fn udp_checksum_is_never_zero() {
        let mut f = alloc::vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&28u16.to_be_bytes());
        f[23] = 17;
        f[38..40].copy_from_slice(&8u16.to_be_bytes());
        fill(&mut f).unwrap();
        assert_ne!(u16::from_be_bytes([f[40], f[41]]), 0);
    }
}
