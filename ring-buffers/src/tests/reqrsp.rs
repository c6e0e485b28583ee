//! The honest request/response protocol: delivery, batching, back-pressure, Xen's notification
//! decisions and final checks, and wrap-around of the free-running indices.

use super::*;
use crate::{Full, Notify};

#[test]
fn one_round_trip() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, 0);
    assert_eq!(back.next_request(), Ok(None));
    assert_eq!(front.send(42), Ok(Notify::Yes));
    assert_eq!(back.next_request(), Ok(Some(42)));
    assert_eq!(back.next_request(), Ok(None));
    assert_eq!(back.respond(43), Ok(Notify::Yes));
    assert_eq!(front.next_response(), Ok(Some(43)));
    assert_eq!(front.next_response(), Ok(None));
}

#[test]
fn staged_requests_are_invisible_until_pushed() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, 0);
    front.stage(1).unwrap();
    front.stage(2).unwrap();
    assert_eq!(front.staged(), 2);
    assert_eq!(back.unconsumed_requests(), Ok(0));
    front.publish_requests();
    assert_eq!(front.staged(), 0);
    assert_eq!(back.unconsumed_requests(), Ok(2));
    let mut got = Vec::new();
    assert_eq!(back.consume_requests(u32::MAX, |r| got.push(r)), Ok(2));
    assert_eq!(got, [1, 2]);
}

#[test]
fn front_is_full_after_size_outstanding() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, 0);
    for i in 0..4 {
        assert_eq!(front.free_slots(), 4 - i);
        front.stage(u64::from(i)).unwrap();
    }
    assert!(front.is_full());
    assert_eq!(front.stage(9), Err(Full));
    let _ = front.push_requests();
    // Consuming requests frees nothing: slots come back only with consumed responses.
    assert_eq!(back.consume_requests(u32::MAX, drop), Ok(4));
    assert_eq!(front.stage(9), Err(Full));
    back.stage_response(0).unwrap();
    let _ = back.push_responses();
    assert_eq!(front.stage(9), Err(Full));
    assert_eq!(front.next_response(), Ok(Some(0)));
    assert_eq!(front.free_slots(), 1);
    assert_eq!(front.stage(9), Ok(()));
}

#[test]
fn back_cannot_respond_to_unread_requests() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, 0);
    assert_eq!(back.stage_response(1), Err(Full));
    let _ = front.send(5);
    assert_eq!(back.stage_response(1), Err(Full), "request published but not consumed");
    assert_eq!(back.next_request(), Ok(Some(5)));
    assert_eq!(back.pending_responses(), 1);
    assert_eq!(back.stage_response(1), Ok(()));
    assert_eq!(back.stage_response(1), Err(Full));
}

#[test]
fn batch_is_one_publish() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 8, 0);
    for i in 0..8 {
        front.stage(i).unwrap();
        assert_eq!(evil.load_u32(crate::layout::REQ_PROD), 0);
    }
    assert_eq!(front.push_requests(), Notify::Yes);
    assert_eq!(evil.load_u32(crate::layout::REQ_PROD), 8);
    let mut sum = 0;
    assert_eq!(back.consume_requests(3, |r| sum += r), Ok(3), "max bounds the batch");
    assert_eq!(back.consume_requests(u32::MAX, |r| sum += r), Ok(5));
    assert_eq!(sum, 28);
    for i in 0..8 {
        back.stage_response(i as u32 * 2).unwrap();
    }
    assert_eq!(back.push_responses(), Notify::Yes);
    let mut got = Vec::new();
    assert_eq!(front.poll_responses(|r| got.push(r)), Ok(8));
    assert_eq!(got, [0, 2, 4, 6, 8, 10, 12, 14]);
}

#[test]
fn notify_follows_req_event() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 8, 0);
    // Fresh ring: req_event = 1, so the first request notifies and the second does not.
    assert_eq!(front.send(1), Ok(Notify::Yes));
    assert_eq!(front.send(2), Ok(Notify::No));
    assert_eq!(back.consume_requests(u32::MAX, drop), Ok(2));
    // Work pending: the final check says so and leaves req_event alone.
    let _ = front.send(3);
    assert_eq!(back.final_check_for_requests(), Ok(true));
    assert_eq!(evil.load_u32(crate::layout::REQ_EVENT), 1);
    assert_eq!(back.next_request(), Ok(Some(3)));
    // Out of work: req_event = req_cons + 1, and the next push must notify.
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(evil.load_u32(crate::layout::REQ_EVENT), 4);
    front.stage(4).unwrap();
    front.stage(5).unwrap();
    assert_eq!(front.push_requests(), Notify::Yes, "event index inside the pushed batch");
    assert_eq!(front.send(6), Ok(Notify::No));
    // Nothing staged: nothing to notify.
    assert_eq!(front.push_requests(), Notify::No);
}

#[test]
fn notify_follows_rsp_event() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 8, 0);
    for i in 0..4 {
        front.stage(i).unwrap();
    }
    let _ = front.push_requests();
    assert_eq!(back.consume_requests(u32::MAX, drop), Ok(4));
    assert_eq!(back.respond(0), Ok(Notify::Yes)); // rsp_event = 1
    assert_eq!(back.respond(1), Ok(Notify::No));
    assert_eq!(front.poll_responses(drop), Ok(2));
    assert_eq!(front.final_check_for_responses(), Ok(false)); // rsp_event = 3
    assert_eq!(back.respond(2), Ok(Notify::Yes));
    assert_eq!(front.final_check_for_responses(), Ok(true));
    assert_eq!(front.next_response(), Ok(Some(2)));
}

#[test]
fn wraps_around_u32_max() {
    for start in [u32::MAX - 5, u32::MAX, 0x8000_0000 - 3] {
        let mut pages = [Page::new()];
        let (mut front, mut back, _) = small_ring(&mut pages, 4, start);
        let mut next_req = 0u64;
        let mut expect_req = 0u64;
        let mut expect_rsp = 0u32;
        for round in 0..10 {
            let k = 1 + round % 4;
            for _ in 0..k {
                front.stage(next_req).unwrap();
                next_req += 1;
            }
            let _ = front.push_requests();
            let n = back
                .consume_requests(u32::MAX, |r| {
                    assert_eq!(r, expect_req);
                    expect_req += 1;
                })
                .unwrap();
            assert_eq!(n, k as u32);
            for i in 0..n {
                back.stage_response((expect_req - u64::from(n - i)) as u32).unwrap();
            }
            let _ = back.push_responses();
            front
                .poll_responses(|r| {
                    assert_eq!(r, expect_rsp);
                    expect_rsp += 1;
                })
                .unwrap();
            assert_eq!(front.free_slots(), 4);
        }
        assert_eq!(expect_req, 23); // 1+2+3+4+1+2+3+4+1+2
    }
}

#[test]
fn attach_resumes_at_index() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let mut ring = SharedRing::<u64, u64>::new(mem).unwrap();
    ring.init_at(1000);
    let (mut front, mut back) = ring.split_at(1000);
    assert_eq!(front.send(7), Ok(Notify::Yes));
    assert_eq!(back.next_request(), Ok(Some(7)));
}

#[test]
fn blkif_sized_items_copy_whole() {
    let mut pages = [Page::new()];
    let mut ring = SharedRing::<BlkReq, BlkRsp>::new(SharedMem::new(&mut pages)).unwrap();
    ring.init();
    let (mut front, mut back) = ring.split();
    let seg = |i: u32| BlkSeg { gref: 100 + i, first_sect: 0, last_sect: 7, _pad: 0 };
    for id in 0..32u64 {
        let req = BlkReq {
            op: 1,
            nr_segments: 11,
            handle: 0x51,
            _pad: 0,
            id,
            sector: id * 8,
            seg: core::array::from_fn(|i| seg(i as u32 + id as u32)),
        };
        front.stage(req).unwrap();
    }
    let _ = front.push_requests();
    for id in 0..32u64 {
        let req = back.next_request().unwrap().unwrap();
        assert_eq!((req.id, req.sector, req.seg[10].gref), (id, id * 8, 110 + id as u32));
        back.stage_response(BlkRsp { id, op: 1, _pad: 0, status: 0, _pad2: 0 }).unwrap();
    }
    let _ = back.push_responses();
    let mut ids = Vec::new();
    front.poll_responses(|r| ids.push(r.id)).unwrap();
    assert_eq!(ids, (0..32).collect::<Vec<_>>());
}

#[test]
fn odd_sized_slots_do_not_bleed() {
    // 3-byte slots: neighbours share words; each copy must touch only its own bytes.
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages).shrink_to(64 + 3 * 8);
    let mut ring = SharedRing::<[u8; 3], [u8; 1]>::new(mem).unwrap();
    assert_eq!(ring.size(), 8);
    ring.init();
    let (mut front, mut back) = ring.split();
    for round in 0..5u8 {
        for i in 0..8u8 {
            front.stage([round, i, 0xEE]).unwrap();
        }
        let _ = front.push_requests();
        for i in 0..8u8 {
            assert_eq!(back.next_request(), Ok(Some([round, i, 0xEE])));
            if i % 2 == 1 {
                // Answer in pairs, interleaved with reads of the neighbouring slots.
                back.stage_response([i - 1]).unwrap();
                back.stage_response([i]).unwrap();
            }
        }
        let _ = back.push_responses();
        let mut got = Vec::new();
        front.poll_responses(|r| got.push(r[0])).unwrap();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    }
}

#[test]
fn slice_apis_wrap_and_bound() {
    for start in [0, u32::MAX - 2] {
        let mut pages = [Page::new()];
        let (mut front, mut back, _) = small_ring(&mut pages, 4, start);
        let mut next = 0u64;
        let mut buf = [0u64; 8];
        let mut rsps = [0u32; 8];
        for round in 0..6 {
            // Stage more than fits: only the free slots are taken.
            let reqs: Vec<u64> = (next..next + 6).collect();
            let n = front.stage_requests(&reqs);
            assert_eq!(n, 4, "round {round}");
            let _ = front.push_requests();
            // Consume in two goes across the wrap.
            assert_eq!(back.consume_requests_into(&mut buf[..1]), Ok(1));
            assert_eq!(back.consume_requests_into(&mut buf[1..]), Ok(3));
            assert_eq!(&buf[..4], &reqs[..4]);
            // Answer more than were consumed: only four are taken.
            let answers: Vec<u32> = buf[..4].iter().map(|r| *r as u32 + 1).chain([9, 9]).collect();
            assert_eq!(back.stage_responses(&answers), 4);
            assert_eq!(back.stage_responses(&answers), 0);
            let _ = back.push_responses();
            assert_eq!(front.consume_responses_into(&mut rsps[..3]), Ok(3));
            assert_eq!(front.consume_responses_into(&mut rsps[3..]), Ok(1));
            assert_eq!(&rsps[..4], &answers[..4]);
            next += 4;
        }
    }
}

#[test]
fn zero_sized_responses_just_free_slots() {
    let mut pages = [Page::new()];
    let mut ring = SharedRing::<[u64; 8], ()>::new(SharedMem::new(&mut pages)).unwrap();
    assert_eq!(ring.size(), 32); // 64-byte slots
    ring.init();
    let (mut front, mut back) = ring.split();
    for round in 0..3u64 {
        for i in 0..32 {
            front.stage([round * 100 + i; 8]).unwrap();
        }
        assert!(front.is_full());
        let _ = front.push_requests();
        let mut sum = 0;
        assert_eq!(back.consume_requests(u32::MAX, |r| sum += r[7]), Ok(32));
        assert_eq!(sum, (0..32).map(|i| round * 100 + i).sum::<u64>());
        assert_eq!(back.stage_responses(&[(); 32]), 32);
        let _ = back.push_responses();
        assert_eq!(front.poll_responses(|()| {}), Ok(32));
        assert_eq!(front.free_slots(), 32);
    }
}

#[test]
fn consume_reads_peer_index_only_when_needed() {
    let mut pages = [Page::new()];
    let (mut front, mut back, evil) = small_ring(&mut pages, 8, 0);
    for i in 0..4 {
        front.stage(i).unwrap();
    }
    let _ = front.push_requests();
    assert_eq!(back.consume_requests(1, drop), Ok(1)); // sees req_prod = 4
    // A bogus req_prod now is not read while three requests are already known...
    evil.store_u32(crate::layout::REQ_PROD, 1000);
    assert_eq!(back.consume_requests(3, drop), Ok(3));
    // ...and is caught as soon as it is.
    assert!(back.consume_requests(1, drop).is_err());
}

#[test]
fn stage_iter_takes_only_what_fits() {
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, u32::MAX - 1);
    let mut it = 10..20u64;
    assert_eq!(front.stage_iter(&mut it), 4, "wraps the slot array and the index");
    assert_eq!(it.next(), Some(14), "the fifth item was not consumed");
    assert_eq!(front.stage_iter(15..16), 0);
    let _ = front.push_requests();
    let mut got = Vec::new();
    assert_eq!(back.consume_requests(u32::MAX, |r| got.push(r)), Ok(4));
    assert_eq!(got, [10, 11, 12, 13]);
    assert_eq!(back.stage_responses(&[1, 2]), 2);
    let _ = back.push_responses();
    assert_eq!(front.poll_responses(drop), Ok(2));
    assert_eq!(front.stage_iter([7u64]), 1, "iterator shorter than the space");
    assert_eq!(front.staged(), 1);
}

#[test]
fn stage_iter_untrusted_length_takes_only_what_fits() {
    // An iterator without a trusted length (`from_fn`) takes the general path: it is asked for
    // an item only when a slot is ready for it, across the wrap of the slot array and index.
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 4, u32::MAX - 1);
    let mut next = 10u64;
    let mut asked = 0;
    let it = core::iter::from_fn(|| {
        asked += 1;
        next += 1;
        Some(next - 1)
    });
    assert_eq!(front.stage_iter(it), 4);
    assert_eq!(asked, 4, "no item taken beyond the free slots");
    let _ = front.push_requests();
    let mut got = Vec::new();
    assert_eq!(back.consume_requests(u32::MAX, |r| got.push(r)), Ok(4));
    assert_eq!(got, [10, 11, 12, 13]);
    // One that runs out in the second run (after the wrap).
    assert_eq!(back.stage_responses(&[0; 4]), 4);
    let _ = back.push_responses();
    assert_eq!(front.poll_responses(drop), Ok(4));
    let mut left = 3;
    let it = core::iter::from_fn(|| {
        (left > 0).then(|| {
            left -= 1;
            20 + left
        })
    });
    assert_eq!(front.stage_iter(it), 3);
    assert_eq!(front.staged(), 3);
}

#[test]
fn a_panicking_consumer_callback_loses_and_repeats_nothing() {
    // The consumer index moves past each copy before the callback sees it, whatever the
    // callback does: after a panic on the third request, the fourth is next.
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 8, u32::MAX - 2);
    assert_eq!(front.stage_iter(0..6u64), 6);
    let _ = front.push_requests();
    let mut got = Vec::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = back.consume_requests(u32::MAX, |r| {
            got.push(r);
            assert_ne!(r, 2, "callback panics");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(back.pending_responses(), 3);
    assert_eq!(back.consume_requests(u32::MAX, |r| got.push(r)), Ok(3));
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    // The same on the front end's responses (crossing the index wrap).
    assert_eq!(back.stage_responses(&[10, 11, 12, 13, 14, 15]), 6);
    let _ = back.push_responses();
    let mut rsps = Vec::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = front.poll_responses(|r| {
            rsps.push(r);
            assert_ne!(r, 13, "callback panics");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(rsps, [10, 11, 12, 13]);
    assert_eq!(front.outstanding(), 2);
    assert_eq!(front.poll_responses(|r| rsps.push(r)), Ok(2));
    assert_eq!(rsps, [10, 11, 12, 13, 14, 15]);
    assert_eq!(front.outstanding(), 0);
}

#[test]
fn zero_sized_responses_across_the_wrap() {
    // A response type with no bytes (a bare acknowledgement): nothing is copied, but the
    // indices move exactly as for any other type, across the wrap.
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages).shrink_to(64 + 8 * 4);
    let mut ring = SharedRing::<u64, ()>::new(mem).unwrap();
    ring.init_at(u32::MAX - 1);
    let (mut front, mut back) = ring.split_at(u32::MAX - 1);
    for round in 0..3u64 {
        assert_eq!(front.stage_iter(round * 10..round * 10 + 4), 4);
        let _ = front.push_requests();
        let mut got = [0u64; 4];
        assert_eq!(back.consume_requests_into(&mut got), Ok(4));
        assert_eq!(got, [round * 10, round * 10 + 1, round * 10 + 2, round * 10 + 3]);
        assert_eq!(back.stage_responses(&[(); 8]), 4);
        let _ = back.push_responses();
        let mut acks = 0;
        assert_eq!(front.poll_responses(|()| acks += 1), Ok(4));
        assert_eq!(acks, 4);
        assert_eq!(front.outstanding(), 0);
    }
}
