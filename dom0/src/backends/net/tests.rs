//! Host tests of a vif's data path against a frontend in the same process: the rings are
//! `ring-buffers`' own over local pages, the grants a table of local pages.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hypercall_abi::GrantRef;
use hypercall_abi::grant_table::GNTST_BAD_GNTREF;
use hypercall_abi::io::netif::*;
use ring_buffers::{FrontRing, Notify, Page, SharedMem, SharedRing};
use zerocopy::{FromBytes, IntoBytes};

use super::vif::*;

/// The frontend's granted pages.
#[derive(Default)]
struct Grants(BTreeMap<u32, Vec<u8>>);

impl Grants {
    fn page(&mut self, gref: u32) -> &mut Vec<u8> {
        self.0.entry(gref).or_insert_with(|| alloc::vec![0u8; 4096])
    }
}

impl GrantIo for Grants {
    fn capacity(&self) -> usize {
        // Small enough that a full ring takes more than one batch.
        16 * 4096
    }
    fn copy_in(&mut self, segs: &[Segment], dst: &mut [u8]) -> Result<(), (GrantRef, i16)> {
        let mut at = 0;
        for s in segs {
            let p = self.0.get(&s.gref.0).ok_or((s.gref, GNTST_BAD_GNTREF))?;
            let (o, n) = (usize::from(s.offset), usize::from(s.len));
            dst[at..at + n].copy_from_slice(p.get(o..o + n).ok_or((s.gref, -1))?);
            at += n;
        }
        assert_eq!(at, dst.len(), "segments cover the buffer");
        Ok(())
    }
    fn copy_out(&mut self, segs: &[Segment], src: &[u8]) -> Result<(), (GrantRef, i16)> {
        let mut at = 0;
        for s in segs {
            let p = self.0.get_mut(&s.gref.0).ok_or((s.gref, GNTST_BAD_GNTREF))?;
            let (o, n) = (usize::from(s.offset), usize::from(s.len));
            p.get_mut(o..o + n).ok_or((s.gref, -1))?.copy_from_slice(&src[at..at + n]);
            at += n;
        }
        assert_eq!(at, src.len(), "segments cover the frames");
        Ok(())
    }
}

type TxFront<'a> = FrontRing<'a, NetifTxRequest, NetifTxResponse>;
type RxFront<'a> = FrontRing<'a, NetifRxRequest, NetifRxResponse>;

fn rings<'a>(
    tx: &'a mut [Page; 1],
    rx: &'a mut [Page; 1],
) -> (TxFront<'a>, RxFront<'a>, VifRings<'a>) {
    let mut t = SharedRing::new(SharedMem::new(tx)).unwrap();
    t.init();
    let (tf, tb) = t.split();
    let mut r = SharedRing::new(SharedMem::new(rx)).unwrap();
    r.init();
    let (rf, rb) = r.split();
    (tf, rf, VifRings::new(tb, rb))
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> NetifTxRequest {
    NetifTxRequest { gref: GrantRef(gref), offset, flags, id, size }
}

fn responses(f: &mut TxFront<'_>) -> Vec<NetifTxResponse> {
    let mut v = Vec::new();
    f.poll_responses(|r| v.push(r)).unwrap();
    v
}

#[test]
fn one_slot_packets_go_out_and_are_answered() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, _rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    let data = frame(100, 1);
    g.page(9)[200..300].copy_from_slice(&data);
    let _ = tf.send(req(9, 200, 0, 5, 100)).unwrap();
    let mut out = Vec::new();
    assert_eq!(vif.transmit(&mut g, 64, &mut out), Ok(Notify::Yes));
    assert_eq!(out, [Frame { data, csum_filled: false }]);
    assert_eq!(responses(&mut tf), [NetifTxResponse { id: 5, status: NETIF_RSP_OKAY }]);
    assert_eq!(vif.stats.tx_packets, 1);
}

#[test]
fn multi_slot_packets_and_extras_are_reassembled() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, _rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    let data = frame(1400, 3);
    // 1000 bytes at the end of one page, 400 at the start of the next, as Linux's netfront
    // splits a buffer that crosses a page boundary.
    g.page(10)[3096..].copy_from_slice(&data[..1000]);
    g.page(11)[..400].copy_from_slice(&data[1000..]);
    let mcast = NetifExtraInfo { kind: XEN_NETIF_EXTRA_TYPE_MCAST_ADD, flags: 0, u: [1; 6] };
    let mut extra = NetifTxRequest::default();
    extra.as_mut_bytes()[..8].copy_from_slice(mcast.as_bytes());
    tf.stage(req(10, 3096, NETTXF_MORE_DATA | NETTXF_EXTRA_INFO, 1, 1400)).unwrap();
    tf.stage(extra).unwrap();
    tf.stage(req(11, 0, 0, 2, 400)).unwrap();
    let _ = tf.push_requests();
    let mut out = Vec::new();
    let _ = vif.transmit(&mut g, 64, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, data);
    let r = responses(&mut tf);
    assert_eq!(
        r,
        [
            NetifTxResponse { id: 1, status: NETIF_RSP_OKAY },
            NetifTxResponse { id: 0, status: NETIF_RSP_NULL },
            NetifTxResponse { id: 2, status: NETIF_RSP_OKAY },
        ]
    );
}

#[test]
fn packets_dom0_will_not_carry_are_answered_as_errors() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, _rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    g.page(9);
    let gso = NetifExtraInfo { kind: XEN_NETIF_EXTRA_TYPE_GSO, flags: 0, u: [0; 6] };
    let mut extra = NetifTxRequest::default();
    extra.as_mut_bytes()[..8].copy_from_slice(gso.as_bytes());
    tf.stage(req(9, 0, 0, 1, 8)).unwrap(); // runt
    tf.stage(req(9, 0, 0, 2, 2000)).unwrap(); // past the MTU (still within the page)
    tf.stage(req(9, 0, NETTXF_EXTRA_INFO, 3, 100)).unwrap(); // GSO was not offered
    tf.stage(extra).unwrap();
    tf.stage(req(9, 0, NETTXF_CSUM_BLANK, 4, 100)).unwrap(); // not IPv4: cannot fill
    let _ = tf.push_requests();
    let mut out = Vec::new();
    let _ = vif.transmit(&mut g, 64, &mut out).unwrap();
    assert!(out.is_empty());
    let st: Vec<(u16, i16)> = responses(&mut tf).iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        st,
        [
            (1, NETIF_RSP_ERROR),
            (2, NETIF_RSP_ERROR),
            (3, NETIF_RSP_ERROR),
            (0, NETIF_RSP_NULL),
            (4, NETIF_RSP_ERROR)
        ]
    );
    assert_eq!(vif.stats.tx_errors, 4);
}

#[test]
fn broken_protocol_is_fatal() {
    let cases: [(&[NetifTxRequest], Fatal); 4] = [
        (&[req(77, 0, 0, 1, 100)], Fatal::BadGrant { gref: 77, status: GNTST_BAD_GNTREF }),
        (&[req(9, 4000, 0, 1, 200)], Fatal::SlotPastPage { offset: 4000, size: 200 }),
        (&[req(9, 0, NETTXF_MORE_DATA, 1, 200)], Fatal::Truncated),
        (&[req(9, 0, NETTXF_MORE_DATA, 1, 60); 19], Fatal::TooManySlots),
    ];
    for (reqs, want) in cases {
        let (mut a, mut b) = ([Page::new()], [Page::new()]);
        let (mut tf, _rf, mut vif) = rings(&mut a, &mut b);
        let mut g = Grants::default();
        g.page(9);
        for r in reqs {
            tf.stage(*r).unwrap();
        }
        let _ = tf.push_requests();
        assert_eq!(vif.transmit(&mut g, 64, &mut Vec::new()), Err(want), "{reqs:?}");
    }
    let bad_extra = NetifExtraInfo { kind: 9, flags: 0, u: [0; 6] };
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, _rf, mut vif) = rings(&mut a, &mut b);
    let mut extra = NetifTxRequest::default();
    extra.as_mut_bytes()[..8].copy_from_slice(bad_extra.as_bytes());
    tf.stage(req(9, 0, NETTXF_EXTRA_INFO, 1, 60)).unwrap();
    tf.stage(extra).unwrap();
    let _ = tf.push_requests();
    assert_eq!(vif.transmit(&mut Grants::default(), 64, &mut Vec::new()), Err(Fatal::BadExtra(9)));
}

#[test]
fn blank_checksums_are_filled_and_flagged_on_receive() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, mut rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    // Ethernet + IPv4 + UDP, checksum blank.
    let mut f = alloc::vec![0u8; 14 + 20 + 8 + 4];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&32u16.to_be_bytes());
    f[23] = 17;
    f[38..40].copy_from_slice(&12u16.to_be_bytes());
    f[42..].copy_from_slice(b"ping");
    g.page(9)[..f.len()].copy_from_slice(&f);
    let _ =
        tf.send(req(9, 0, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED, 1, f.len() as u16)).unwrap();
    let mut out = Vec::new();
    let _ = vif.transmit(&mut g, 64, &mut out).unwrap();
    assert!(out[0].csum_filled);
    assert_ne!(out[0].data[40..42], [0, 0]);
    // Back to the same frontend through its receive ring.
    g.page(20);
    let _ = rf.send(NetifRxRequest { id: 4, _pad: 0, gref: GrantRef(20) }).unwrap();
    vif.queue_rx(out.remove(0));
    assert_eq!(vif.receive(&mut g, 64), Ok(Notify::Yes));
    let r = rf.next_response().unwrap().unwrap();
    assert_eq!((r.id, r.offset, r.flags, r.status), (4, 0, NETRXF_DATA_VALIDATED, f.len() as i16));
    assert_eq!(g.page(20)[42..46], *b"ping");
}

#[test]
fn receive_waits_for_requests_and_bounds_its_queue() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (_tf, mut rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    for i in 0..(RXQ_MAX + 10) {
        vif.queue_rx(Frame { data: frame(60, i as u8), csum_filled: false });
    }
    assert_eq!(vif.rx_queued(), RXQ_MAX);
    assert_eq!(vif.stats.rx_dropped, 10);
    // No requests: nothing moves, and the frontend is asked to notify its next one.
    assert_eq!(vif.receive(&mut g, 64), Ok(Notify::No));
    for i in 0..3u16 {
        g.page(100 + u32::from(i));
        rf.stage(NetifRxRequest { id: i, _pad: 0, gref: GrantRef(100 + u32::from(i)) }).unwrap();
    }
    assert_eq!(rf.push_requests(), Notify::Yes, "the back end asked to be told");
    assert_eq!(vif.receive(&mut g, 2), Ok(Notify::Yes));
    assert_eq!(vif.stats.rx_packets, 2, "the budget holds");
    let _ = vif.receive(&mut g, 64).unwrap();
    assert_eq!(vif.rx_queued(), RXQ_MAX - 3);
    let mut got = Vec::new();
    rf.poll_responses(|r| got.push(r.id)).unwrap();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(g.page(102)[..60], frame(60, 2)[..]);
    // A receive request with a bad grant is fatal.
    let _ = rf.send(NetifRxRequest { id: 9, _pad: 0, gref: GrantRef(999) }).unwrap();
    assert_eq!(
        vif.receive(&mut g, 64),
        Err(Fatal::BadGrant { gref: 999, status: GNTST_BAD_GNTREF })
    );
}

#[test]
fn extra_slots_read_back_as_extra_info() {
    // The extra-info slot is the first 8 bytes of a 12-byte request slot.
    let e = NetifExtraInfo { kind: 2, flags: 1, u: [1, 2, 3, 4, 5, 6] };
    let mut slot = NetifTxRequest::default();
    slot.as_mut_bytes()[..8].copy_from_slice(e.as_bytes());
    assert_eq!(NetifExtraInfo::read_from_bytes(&slot.as_bytes()[..8]).unwrap(), e);
}

#[test]
fn a_round_is_one_batch_bounded_by_the_copy_buffer_and_keeps_order() {
    let (mut a, mut b) = ([Page::new()], [Page::new()]);
    let (mut tf, mut rf, mut vif) = rings(&mut a, &mut b);
    let mut g = Grants::default();
    let n = 60u16;
    for i in 0..n {
        g.page(100 + u32::from(i))[..1500].copy_from_slice(&frame(1500, i as u8));
        tf.stage(req(100 + u32::from(i), 0, 0, i, 1500)).unwrap();
    }
    let _ = tf.push_requests();
    let mut out = Vec::new();
    let _ = vif.transmit(&mut g, 64, &mut out).unwrap();
    // 64 KiB of copies hold 43 frames of at most 1518 bytes: the rest waits for the next.
    assert_eq!(out.len(), 43);
    let _ = vif.transmit(&mut g, 64, &mut out).unwrap();
    assert_eq!(out.len(), usize::from(n));
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f.data, frame(1500, i as u8), "frame {i}");
    }
    let ids: Vec<u16> = responses(&mut tf).iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
    // Receive: the same frames back, in order, each in its own request's page.
    for i in 0..n {
        g.page(300 + u32::from(i));
        rf.stage(NetifRxRequest { id: i, _pad: 0, gref: GrantRef(300 + u32::from(i)) }).unwrap();
    }
    let _ = rf.push_requests();
    for f in out {
        vif.queue_rx(f);
    }
    let _ = vif.receive(&mut g, 64).unwrap();
    let _ = vif.receive(&mut g, 64).unwrap();
    assert_eq!(vif.rx_queued(), 0);
    for i in 0..n {
        assert_eq!(g.page(300 + u32::from(i))[..1500], frame(1500, i as u8)[..], "page {i}");
    }
}
