//! Wire geometry: slot sizes and counts as Xen computes them, header initialisation, and the
//! console / XenStore offsets as seen from the raw page.

use super::*;
use crate::layout::{
    REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, ring_size, round_down_pow2, slot_size,
};
use crate::{ConsoleRing, SetupError, XenstoreRing};

#[test]
fn round_down_matches_rd32() {
    let cases =
        [(0, 0), (1, 1), (2, 2), (3, 2), (36, 32), (63, 32), (64, 64), (504, 256), (336, 256)];
    for (x, want) in cases {
        assert_eq!(round_down_pow2(x), want, "rd({x})");
    }
    assert_eq!(round_down_pow2(u32::MAX as usize), 1 << 31);
}

#[test]
fn blkif_geometry() {
    assert_eq!(core::mem::size_of::<BlkReq>(), 112);
    assert_eq!(slot_size::<BlkReq, BlkRsp>(), 112);
    assert_eq!(ring_size(4096, 112), 32);
    assert_eq!(ring_size(2 * 4096, 112), 64); // (8192 - 64) / 112 = 72 -> 64
    let mut pages = [Page::new()];
    let ring = SharedRing::<BlkReq, BlkRsp>::new(SharedMem::new(&mut pages)).unwrap();
    assert_eq!(ring.size(), 32);
    let mut pages = [Page::new(), Page::new()];
    let ring = SharedRing::<BlkReq, BlkRsp>::new(SharedMem::new(&mut pages)).unwrap();
    assert_eq!(ring.size(), 64);
}

#[test]
fn netif_geometry() {
    // tx: 12-byte request, 4-byte response: 4032 / 12 = 336 -> 256.
    assert_eq!(slot_size::<NetTxReq, NetTxRsp>(), 12);
    assert_eq!(SharedRing::<NetTxReq, NetTxRsp>::SLOT_SIZE, 12);
    assert_eq!(ring_size(4096, 12), 256);
    // rx: 8 and 8: 4032 / 8 = 504 -> 256.
    assert_eq!(slot_size::<NetRxReq, NetRxRsp>(), 8);
    assert_eq!(ring_size(4096, 8), 256);
}

#[test]
fn slot_is_the_c_union() {
    // Size of the larger member, rounded up to the stricter alignment.
    assert_eq!(slot_size::<[u8; 12], u64>(), 16);
    assert_eq!(slot_size::<[u8; 3], u16>(), 4);
    assert_eq!(slot_size::<u8, ()>(), 1);
    assert_eq!(slot_size::<[u8; 9], [u32; 2]>(), 12);
}

#[test]
fn too_small_is_an_error() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages).shrink_to(64 + 111);
    let err = SharedRing::<BlkReq, BlkRsp>::new(mem).unwrap_err();
    assert_eq!(err, SetupError::TooSmall { len: 175, need: 176 });
    let err = SharedRing::<u64, u64>::new(SharedMem::new(&mut [])).unwrap_err();
    assert_eq!(err, SetupError::TooSmall { len: 0, need: 72 });
}

#[test]
fn shared_ring_init_sets_header() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    evil.write_bytes(0, &[0xAA; 64]);
    let mut ring = SharedRing::<BlkReq, BlkRsp>::new(mem).unwrap();
    ring.init();
    assert_eq!(evil.load_u32(REQ_PROD), 0);
    assert_eq!(evil.load_u32(RSP_PROD), 0);
    assert_eq!(evil.load_u32(REQ_EVENT), 1);
    assert_eq!(evil.load_u32(RSP_EVENT), 1);
    let mut rest = [0xFFu8; 48];
    evil.read_bytes(16, &mut rest);
    assert_eq!(rest, [0; 48], "private bytes and padding zeroed");
}

#[test]
fn request_lands_in_slot_at_64() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut front, _back) = {
        let mut ring = SharedRing::<NetTxReq, NetTxRsp>::new(mem).unwrap();
        ring.init();
        ring.split()
    };
    for id in 0..3u16 {
        front
            .stage(NetTxReq {
                gref: 0x1111_0000 + u32::from(id),
                offset: 7,
                flags: 0,
                id,
                size: 60,
            })
            .unwrap();
    }
    assert_eq!(front.push_requests(), crate::Notify::Yes);
    assert_eq!(evil.load_u32(REQ_PROD), 3);
    // Slot 2 starts at 64 + 2 * 12 = 88: gref, then offset.
    assert_eq!(evil.load_u32(88), 0x1111_0002);
    let mut b = [0u8; 12];
    evil.read_bytes(88, &mut b);
    assert_eq!(&b[4..6], &7u16.to_ne_bytes());
    assert_eq!(&b[8..10], &2u16.to_ne_bytes());
}

#[test]
fn console_offsets() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut guest, mut dom0) = ConsoleRing::new(mem).unwrap().split();
    let t = guest.write(b"hello").unwrap();
    assert_eq!(t.bytes, 5);
    assert_eq!(evil.load_u32(3084), 5, "out_prod @3084");
    let mut b = [0u8; 5];
    evil.read_bytes(1024, &mut b);
    assert_eq!(&b, b"hello", "out data @1024");
    assert_eq!(dom0.write(b"ls\n").unwrap().bytes, 3);
    assert_eq!(evil.load_u32(3076), 3, "in_prod @3076");
    evil.read_bytes(0, &mut b[..3]);
    assert_eq!(&b[..3], b"ls\n", "in data @0");
    let mut out = [0u8; 16];
    assert_eq!(dom0.read(&mut out).unwrap().bytes, 5);
    assert_eq!(evil.load_u32(3080), 5, "out_cons @3080");
    assert_eq!(guest.read(&mut out).unwrap().bytes, 3);
    assert_eq!(evil.load_u32(3072), 3, "in_cons @3072");
}

#[test]
fn xenstore_offsets() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut guest, mut xsd) = XenstoreRing::new(mem).unwrap().split();
    assert_eq!(guest.write(b"abcd").unwrap().bytes, 4);
    assert_eq!(evil.load_u32(2052), 4, "req_prod @2052");
    assert_eq!(evil.load_u32(0), u32::from_ne_bytes(*b"abcd"), "req data @0");
    let mut b = [0u8; 8];
    assert_eq!(xsd.read(&mut b).unwrap().bytes, 4);
    assert_eq!(evil.load_u32(2048), 4, "req_cons @2048");
    assert_eq!(xsd.write(b"xy").unwrap().bytes, 2);
    assert_eq!(evil.load_u32(2060), 2, "rsp_prod @2060");
    assert_eq!(guest.read(&mut b).unwrap().bytes, 2);
    assert_eq!(evil.load_u32(2056), 2, "rsp_cons @2056");
    evil.read_bytes(1024, &mut b[..2]);
    assert_eq!(&b[..2], b"xy", "rsp data @1024");
    xsd.control().set_server_features(crate::XENSTORE_SERVER_FEATURE_RECONNECTION);
    guest.control().set_connection(crate::XENSTORE_RECONNECT);
    xsd.control().set_error(crate::XENSTORE_ERROR_RINGIDX);
    xsd.control().set_evtchn_port(9);
    assert_eq!(evil.load_u32(2064), 1, "server_features @2064");
    assert_eq!(evil.load_u32(2068), 1, "connection @2068");
    assert_eq!(evil.load_u32(2072), 2, "error @2072");
    assert_eq!(evil.load_u32(2076), 9, "evtchn_port @2076");
    assert_eq!(guest.control().error(), crate::XENSTORE_ERROR_RINGIDX);
}
