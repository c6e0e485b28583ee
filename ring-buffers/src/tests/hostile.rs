//! A peer that breaks the rules, one step at a time: each violation must come back as the
//! specific [`RingError`] with the values seen, stay latched, and never panic or loop.

use super::*;
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::{ByteRing, ConsoleRing, Notify, RingError, XenstoreRing};

#[test]
fn req_prod_past_a_ring_is_rejected() {
    let mut pages = [Page::new()];
    let (_front, mut back, evil) = small_ring(&mut pages, 4, 0);
    evil.store_u32(REQ_PROD, 5);
    let want = RingError::BadRequestProducer { req_prod: 5, req_prod_seen: 0, rsp_prod_pvt: 0 };
    assert_eq!(back.next_request(), Err(want));
    // Latched: fixing the index does not un-break the ring.
    evil.store_u32(REQ_PROD, 1);
    assert_eq!(back.next_request(), Err(want));
    assert_eq!(back.unconsumed_requests(), Err(want));
    assert_eq!(back.final_check_for_requests(), Err(want));
    assert_eq!(back.consume_requests(10, |_| panic!("no request may be read")), Err(want));
    assert_eq!(back.error(), Some(want));
}

#[test]
fn exactly_a_ring_is_allowed_then_bounded() {
    let mut pages = [Page::new()];
    let (_front, mut back, evil) = small_ring(&mut pages, 4, 0);
    evil.store_u32(REQ_PROD, 4);
    let mut n = 0;
    assert_eq!(back.consume_requests(u32::MAX, |_| n += 1), Ok(4));
    assert_eq!(n, 4);
    assert_eq!(back.next_request(), Ok(None));
    // A fifth request before any response would reuse an unanswered slot.
    evil.store_u32(REQ_PROD, 5);
    assert_eq!(
        back.next_request(),
        Err(RingError::BadRequestProducer { req_prod: 5, req_prod_seen: 4, rsp_prod_pvt: 0 })
    );
}

#[test]
fn answering_extends_the_bound() {
    let mut pages = [Page::new()];
    let (_front, mut back, evil) = small_ring(&mut pages, 4, 0);
    evil.store_u32(REQ_PROD, 4);
    assert_eq!(back.consume_requests(u32::MAX, drop), Ok(4));
    back.stage_response(0).unwrap();
    let _ = back.push_responses();
    evil.store_u32(REQ_PROD, 5);
    assert_eq!(back.unconsumed_requests(), Ok(1));
}

#[test]
fn req_prod_moving_backwards_is_rejected() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 4, 100);
    for i in 0..3 {
        front.stage(i).unwrap();
    }
    let _ = front.push_requests();
    assert_eq!(back.next_request(), Ok(Some(0)));
    assert_eq!(back.unconsumed_requests(), Ok(2)); // req_prod_seen = 103
    evil.store_u32(REQ_PROD, 101);
    assert_eq!(
        back.unconsumed_requests(),
        Err(RingError::BadRequestProducer { req_prod: 101, req_prod_seen: 103, rsp_prod_pvt: 100 })
    );
}

#[test]
fn garbage_req_prod_values() {
    for bad in [u32::MAX, 0x8000_0000, 0x7FFF_FFFF, 17] {
        let mut pages = [Page::new()];
        let (_f, mut back, evil) = small_ring(&mut pages, 16, 0);
        evil.store_u32(REQ_PROD, bad);
        assert_eq!(
            back.next_request(),
            Err(RingError::BadRequestProducer { req_prod: bad, req_prod_seen: 0, rsp_prod_pvt: 0 })
        );
    }
}

#[test]
fn rsp_prod_past_published_requests_is_rejected() {
    let mut pages = [Page::new()];
    let (mut front, _back, evil) = small_ring(&mut pages, 4, 0);
    front.stage(1).unwrap();
    front.stage(2).unwrap();
    let _ = front.push_requests();
    front.stage(3).unwrap(); // staged, not published: no response may claim it
    evil.store_u32(RSP_PROD, 3);
    let want = RingError::BadResponseProducer { rsp_prod: 3, rsp_prod_seen: 0, req_prod: 2 };
    assert_eq!(front.next_response(), Err(want));
    assert_eq!(front.final_check_for_responses(), Err(want));
    assert_eq!(front.poll_responses(|_| panic!("no response may be read")), Err(want));
}

#[test]
fn responses_before_any_request_are_rejected() {
    // Xen's own rule (rsp_prod - rsp_cons <= size) would accept this; we do not.
    let mut pages = [Page::new()];
    let (mut front, _back, evil) = small_ring(&mut pages, 4, 0);
    evil.store_u32(RSP_PROD, 1);
    assert_eq!(
        front.next_response(),
        Err(RingError::BadResponseProducer { rsp_prod: 1, rsp_prod_seen: 0, req_prod: 0 })
    );
}

#[test]
fn rsp_prod_moving_backwards_is_rejected() {
    let mut pages = [Page::new()];
    let (mut front, _back, evil) = small_ring(&mut pages, 4, u32::MAX - 1);
    for i in 0..4 {
        front.stage(i).unwrap();
    }
    let _ = front.push_requests();
    evil.store_u32(RSP_PROD, 1); // wrapped: u32::MAX - 1 + 3
    assert_eq!(front.unconsumed_responses(), Ok(3));
    evil.store_u32(RSP_PROD, u32::MAX);
    assert_eq!(
        front.next_response().map(|_| ()),
        Ok(()),
        "a cached, validated response is still delivered"
    );
    assert_eq!(
        front.unconsumed_responses(),
        Err(RingError::BadResponseProducer { rsp_prod: u32::MAX, rsp_prod_seen: 1, req_prod: 2 })
    );
}

#[test]
fn slot_rewritten_after_copy_does_not_change_the_copy() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 4, 0);
    let _ = front.send(0x1111);
    let req = back.next_request().unwrap().unwrap();
    evil.write_bytes(64, &0x2222u64.to_ne_bytes());
    assert_eq!(req, 0x1111, "the back end works on its own copy");
}

#[test]
fn event_index_garbage_only_changes_notify() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 8, 0);
    for ev in [0, 1, 2, u32::MAX, 0x8000_0000] {
        evil.store_u32(REQ_EVENT, ev);
        evil.store_u32(RSP_EVENT, ev);
        let n = front.send(1).unwrap();
        assert!(matches!(n, Notify::Yes | Notify::No));
        assert_eq!(back.next_request(), Ok(Some(1)));
        let _ = back.respond(2).unwrap();
        assert_eq!(front.next_response(), Ok(Some(2)));
    }
}

#[test]
fn peer_rewriting_our_own_producer_is_ignored() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 4, 0);
    let _ = front.send(1);
    assert_eq!(back.next_request(), Ok(Some(1)));
    // The back end scribbles on req_prod (the front end's index); the front end's next push
    // rests on its own record and still publishes exactly what it staged.
    evil.store_u32(REQ_PROD, 1000);
    assert_eq!(front.send(2), Ok(Notify::No));
    assert_eq!(evil.load_u32(REQ_PROD), 2);
    // And the front scribbling rsp_prod does not move the back end's responses.
    evil.store_u32(RSP_PROD, 77);
    assert_eq!(back.respond(10), Ok(Notify::Yes));
    assert_eq!(evil.load_u32(RSP_PROD), 1);
}

#[test]
fn byte_reader_rejects_prod_too_far() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut guest, _dom0) = ConsoleRing::new(mem).unwrap().split();
    evil.store_u32(3076, 1025); // in_prod: 1025 bytes in a 1024-byte ring
    let want = RingError::BadProducer { prod: 1025, cons: 0 };
    let mut buf = [0u8; 2000];
    assert_eq!(guest.read(&mut buf), Err(want));
    evil.store_u32(3076, 3);
    assert_eq!(guest.read(&mut buf), Err(want), "latched");
    assert_eq!(guest.read_available(), Err(want));
}

#[test]
fn byte_reader_accepts_exactly_full() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut guest, _dom0) = ConsoleRing::new(mem).unwrap().split();
    evil.store_u32(3076, 1024);
    let mut buf = [0u8; 2000];
    assert_eq!(guest.read(&mut buf).unwrap().bytes, 1024);
}

#[test]
fn byte_writer_rejects_cons_ahead() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut guest, _xsd) = XenstoreRing::new(mem).unwrap().split();
    assert_eq!(guest.write(b"abc").unwrap().bytes, 3);
    evil.store_u32(2048, 4); // req_cons past req_prod
    let want = RingError::BadConsumer { prod: 3, cons: 4 };
    assert_eq!(guest.write(b"d"), Err(want));
    assert_eq!(guest.write_space(), Err(want));
}

#[test]
fn byte_writer_rejects_cons_too_far_behind() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let (mut w, _r) = ByteRing::new(mem, super::bytes::SMALL).unwrap().split();
    assert_eq!(w.write(&[1; 10]).unwrap().bytes, 10);
    evil.store_u32(super::bytes::SMALL.cons, 10u32.wrapping_sub(17));
    assert_eq!(
        w.write(&[1]),
        Err(RingError::BadConsumer { prod: 10, cons: 10u32.wrapping_sub(17) })
    );
}
