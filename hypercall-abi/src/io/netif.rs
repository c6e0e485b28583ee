//! Network rings (`io/netif.h`): a transmit ring (guest -> backend) and a receive ring
//! (backend -> guest), 256 slots each in one page. A packet larger than a page spans several
//! slots chained with `NETTXF_more_data` / `NETRXF_more_data`; `extra_info` slots
//! ([`NetifExtraInfo`]) carry GSO and multicast data.

use crate::types::GrantRef;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// TX flag: the checksum is blank (to be filled by the backend / offload).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// TX flag: the packet data has been validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// TX flag: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// TX flag: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// RX flag: the packet data has been validated.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// RX flag: the checksum is blank.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// RX flag: the packet continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// RX flag: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// RX flag: a GSO prefix slot precedes the packet.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Status: dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Status: error.
pub const NETIF_RSP_ERROR: i16 = -1;
/// Status: success.
pub const NETIF_RSP_OKAY: i16 = 0;
/// Status: no response (padding slot for an extra-info request).
pub const NETIF_RSP_NULL: i16 = 1;

/// Largest packet a TX request chain may carry.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;
/// Minimum slots a backend must accept for one packet.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;
/// Slots in a one-page TX ring.
pub const NET_TX_RING_SIZE: u32 = super::ring::nr_slots(4096, 12);
/// Slots in a one-page RX ring.
pub const NET_RX_RING_SIZE: u32 = super::ring::nr_slots(4096, 8);

/// Extra-info type: none (invalid).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra-info type: GSO.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra-info type: add a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra-info type: delete a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra-info type: hash value.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// Extra-info flag: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
/// GSO type: none.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// TX request (12 bytes). Written by the frontend.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct NetifTxRequest {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Cookie, echoed in the response.
    pub id: u16,
    /// Bytes in this slot; in the first slot of a packet, the whole packet's size.
    pub size: u16,
}

/// TX response (4 bytes). Written by the backend.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// RX request (8 bytes): a page the frontend offers for an incoming packet.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct NetifRxRequest {
    /// Cookie, echoed in the response.
    pub id: u16,
    /// Padding.
    pub _pad: u16,
    /// Grant of the buffer page (the backend copies into it).
    pub gref: GrantRef,
}

/// RX response (8 bytes). Written by the backend.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// `> 0`: bytes received; otherwise `NETIF_RSP_*`.
    pub status: i16,
}

/// Extra-info slot (8 bytes) following a request with `*_extra_info`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*` (C field `type`).
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// Type-specific union. GSO: size u16 @0, type u8 @2, pad u8, features u16 @4.
    /// Multicast: `addr[6]`. Hash: type u8, algorithm u8, `value[4]`.
    pub u: [u8; 6],
}

impl NetifExtraInfo {
    /// GSO view: `(size, gso type, features)`.
    #[must_use]
    pub const fn gso(&self) -> (u16, u8, u16) {
        let u = self.u;
        (u16::from_le_bytes([u[0], u[1]]), u[2], u16::from_le_bytes([u[4], u[5]]))
    }
}

/// Parses a vif's `mac` XenStore node (`aa:bb:cc:dd:ee:ff`; `-` separators too, as xl takes
/// them in a configuration).
#[must_use]
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

crate::assert_layout!(
    NetifTxRequest,
    size = 12,
    gref = 0,
    offset = 4,
    flags = 6,
    id = 8,
    size = 10
);
crate::assert_layout!(NetifTxResponse, size = 4, id = 0, status = 2);
crate::assert_layout!(NetifRxRequest, size = 8, id = 0, gref = 4);
crate::assert_layout!(NetifRxResponse, size = 8, id = 0, offset = 2, flags = 4, status = 6);
crate::assert_layout!(NetifExtraInfo, size = 8, kind = 0, flags = 1, u = 2);
static_assertions::const_assert_eq!(NET_TX_RING_SIZE, 256);
static_assertions::const_assert_eq!(NET_RX_RING_SIZE, 256);
