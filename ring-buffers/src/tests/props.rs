//! Property tests: random interleavings of both ends' operations, driven sequentially against
//! a model, with indices starting anywhere (often just below `u32::MAX`); random byte-ring
//! traffic; and a peer scribbling random values between honest operations.
//!
//! Lost wake-ups are checked as Xen defines them: once an end's final check has returned
//! `false` (it would sleep), the next push that publishes work for it must say `Notify::Yes`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::VecDeque;

use super::*;
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::{ByteRing, ByteRingLayout, Notify, RingError};

/// Longest operation sequence: full on the host, short under Miri.
fn steps(host: usize) -> usize {
    if cfg!(miri) { host / 5 } else { host }
}

fn config(cases: u32) -> Config {
    Config { cases: super::cases(cases), failure_persistence: None, ..Config::default() }
}

/// Start indices: mostly close below the u32 wrap, sometimes anywhere.
fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![3 => (0u32..64).prop_map(|d| u32::MAX - d), 1 => any::<u32>()]
}

#[derive(Clone, Debug)]
enum Op {
    FrontStage(u8),
    FrontStageSlice(u8),
    FrontStageIter(u8),
    FrontPush,
    FrontPublish,
    FrontNext,
    FrontPoll,
    FrontInto(u8),
    FrontFinal,
    BackNext,
    BackConsume(u8),
    BackInto(u8),
    BackRespond(u8),
    BackRespondSlice(u8),
    BackPush,
    BackFinal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..6).prop_map(Op::FrontStage),
        (0u8..6).prop_map(Op::FrontStageSlice),
        (0u8..6).prop_map(Op::FrontStageIter),
        Just(Op::FrontPush),
        Just(Op::FrontPublish),
        Just(Op::FrontNext),
        Just(Op::FrontPoll),
        (0u8..6).prop_map(Op::FrontInto),
        Just(Op::FrontFinal),
        Just(Op::BackNext),
        (1u8..6).prop_map(Op::BackConsume),
        (0u8..6).prop_map(Op::BackInto),
        (1u8..6).prop_map(Op::BackRespond),
        (0u8..6).prop_map(Op::BackRespondSlice),
        Just(Op::BackPush),
        Just(Op::BackFinal),
    ]
}

fn response_for(req: u64) -> u32 {
    (req as u32).wrapping_mul(3).wrapping_add(1)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn interleavings_deliver_exactly_once_in_order(
        log2_slots in 0usize..4,
        start in start_index(),
        ops in proptest::collection::vec(op(), 1..steps(200)),
    ) {
        let slots = 1 << log2_slots;
        let mut pages = [Page::new()];
        let (mut front, mut back, _) = small_ring(&mut pages, slots, start);
        let mut next_req = 0u64; // next request value to stage
        let mut back_seen = 0u64; // requests the back end received, in order
        let mut answered = 0u64; // responses the back end staged
        let mut front_seen = 0u64; // responses the front end received, in order
        let mut published = 0u64; // requests published by the front end
        let mut rsp_published = 0u64; // responses published by the back end
        let mut back_asleep = false;
        let mut front_asleep = false;

        for op in ops {
            match op {
                Op::FrontStage(k) => {
                    for _ in 0..k {
                        let fits = front.outstanding() < slots as u32;
                        prop_assert_eq!(front.stage(next_req).is_ok(), fits);
                        if fits { next_req += 1; }
                    }
                }
                Op::FrontStageSlice(k) => {
                    let reqs: Vec<u64> = (next_req..next_req + u64::from(k)).collect();
                    let fits = (slots as u64 - u64::from(front.outstanding())).min(u64::from(k));
                    prop_assert_eq!(front.stage_requests(&reqs) as u64, fits);
                    next_req += fits;
                }
                Op::FrontStageIter(k) => {
                    let fits = (slots as u64 - u64::from(front.outstanding())).min(u64::from(k));
                    let mut it = next_req..next_req + u64::from(k);
                    prop_assert_eq!(front.stage_iter(&mut it) as u64, fits);
                    prop_assert_eq!(it.start, next_req + fits, "took only what it staged");
                    next_req += fits;
                }
                Op::FrontInto(k) => {
                    front_asleep = false;
                    let mut buf = vec![0u32; usize::from(k)];
                    let n = front.consume_responses_into(&mut buf).unwrap();
                    for r in &buf[..n] {
                        prop_assert_eq!(*r, response_for(front_seen));
                        front_seen += 1;
                    }
                    prop_assert_eq!(n as u64, (rsp_published - (front_seen - n as u64)).min(u64::from(k)));
                }
                Op::BackInto(k) => {
                    back_asleep = false;
                    let mut buf = vec![0u64; usize::from(k)];
                    let n = back.consume_requests_into(&mut buf).unwrap();
                    for r in &buf[..n] {
                        prop_assert_eq!(*r, back_seen);
                        back_seen += 1;
                    }
                    prop_assert_eq!(n as u64, (published - (back_seen - n as u64)).min(u64::from(k)));
                }
                Op::BackRespondSlice(k) => {
                    let rsps: Vec<u32> = (answered..answered + u64::from(k)).map(response_for).collect();
                    let n = back.stage_responses(&rsps) as u64;
                    prop_assert_eq!(n, (back_seen - answered).min(u64::from(k)));
                    answered += n;
                }
                Op::FrontPush | Op::FrontPublish => {
                    let adds = next_req > published;
                    if matches!(op, Op::FrontPush) {
                        let n = front.push_requests();
                        if back_asleep && adds {
                            prop_assert_eq!(n, Notify::Yes, "lost wake-up of the back end");
                        }
                        if n.is_yes() { back_asleep = false; }
                    } else {
                        front.publish_requests();
                        // Without a notification decision the caller must notify itself.
                        if adds { back_asleep = false; }
                    }
                    published = next_req;
                }
                Op::BackNext => {
                    back_asleep = false;
                    match back.next_request().unwrap() {
                        Some(r) => { prop_assert_eq!(r, back_seen); back_seen += 1; }
                        None => prop_assert_eq!(back_seen, published),
                    }
                }
                Op::BackConsume(max) => {
                    back_asleep = false;
                    let before = back_seen;
                    let n = back.consume_requests(u32::from(max), |r| {
                        assert_eq!(r, back_seen);
                        back_seen += 1;
                    }).unwrap();
                    prop_assert_eq!(u64::from(n), back_seen - before);
                    prop_assert_eq!(u64::from(n), (published - before).min(u64::from(max)));
                }
                Op::BackRespond(k) => {
                    for _ in 0..k {
                        let ok = back.stage_response(response_for(answered)).is_ok();
                        prop_assert_eq!(ok, answered < back_seen);
                        if ok { answered += 1; }
                    }
                }
                Op::BackPush => {
                    let adds = answered > rsp_published;
                    let n = back.push_responses();
                    if front_asleep && adds {
                        prop_assert_eq!(n, Notify::Yes, "lost wake-up of the front end");
                    }
                    if n.is_yes() { front_asleep = false; }
                    rsp_published = answered;
                }
                Op::FrontNext => {
                    front_asleep = false;
                    if let Some(r) = front.next_response().unwrap() {
                        prop_assert_eq!(r, response_for(front_seen));
                        front_seen += 1;
                    }
                }
                Op::FrontPoll => {
                    front_asleep = false;
                    front.poll_responses(|r| {
                        assert_eq!(r, response_for(front_seen));
                        front_seen += 1;
                    }).unwrap();
                }
                Op::BackFinal => {
                    let work = back.final_check_for_requests().unwrap();
                    prop_assert_eq!(work, back_seen < published);
                    back_asleep = !work;
                }
                Op::FrontFinal => {
                    let work = front.final_check_for_responses().unwrap();
                    prop_assert_eq!(work, rsp_published > front_seen);
                    front_asleep = !work;
                }
            }
            prop_assert!(front_seen <= rsp_published && rsp_published <= answered);
            prop_assert!(answered <= back_seen);
            prop_assert!(back_seen <= published && published <= next_req);
            prop_assert_eq!(u64::from(front.outstanding()), next_req - front_seen);
            prop_assert!(front.outstanding() <= slots as u32);
        }
    }

    #[test]
    fn byte_ring_matches_a_queue(
        log2_size in 0u32..7,
        start in start_index(),
        ops in proptest::collection::vec((any::<bool>(), 0usize..80), 1..steps(120)),
    ) {
        let layout = ByteRingLayout { data: 0, size: 1 << log2_size, cons: 128, prod: 132 };
        let mut pages = [Page::new()];
        let mem = SharedMem::new(&mut pages);
        let evil = mem.peer_view();
        evil.store_u32(layout.cons, start);
        evil.store_u32(layout.prod, start);
        let (mut w, mut r) = ByteRing::new(mem, layout).unwrap().split();
        let mut model = VecDeque::new();
        let mut counter = 0u8;
        for (is_write, len) in ops {
            if is_write {
                let data: Vec<u8> = (0..len).map(|i| counter.wrapping_add(i as u8)).collect();
                let t = w.write(&data).unwrap();
                let fits = (layout.size as usize - model.len()).min(len);
                prop_assert_eq!(t.bytes, fits);
                prop_assert_eq!(t.notify, Notify::from(fits > 0));
                model.extend(&data[..fits]);
                counter = counter.wrapping_add(fits as u8);
            } else {
                let mut buf = vec![0u8; len];
                let t = r.read(&mut buf).unwrap();
                let want: Vec<u8> = model.drain(..model.len().min(len)).collect();
                prop_assert_eq!(&buf[..t.bytes], &want[..]);
                prop_assert_eq!(t.notify, Notify::from(!want.is_empty()));
            }
            prop_assert_eq!(r.available().unwrap() as usize, model.len());
        }
    }

    #[test]
    fn hostile_front_cannot_break_the_back_end(
        start in start_index(),
        steps in proptest::collection::vec((0u8..8, any::<u32>(), 0u8..8), 1..steps(100)),
    ) {
        let slots = 8u32;
        let mut pages = [Page::new()];
        let (_front, mut back, evil) = small_ring(&mut pages, slots as usize, start);
        let mut consumed = 0u64;
        let mut answered = 0u64;
        let mut latched: Option<RingError> = None;
        for (what, val, k) in steps {
            // The peer moves first: plausible or wild values for its index and event word, or
            // garbage in a slot.
            let base = evil.load_u32(REQ_PROD);
            match what {
                0 => evil.store_u32(REQ_PROD, base.wrapping_add(u32::from(k))),
                1 => evil.store_u32(REQ_PROD, val),
                2 => evil.store_u32(REQ_PROD, start.wrapping_add(val % 32)),
                3 => evil.store_u32(REQ_EVENT, val),
                4 => evil.write_bytes(64 + 8 * (usize::from(k)), &u64::from(val).to_ne_bytes()),
                _ => {}
            }
            let r = match what % 3 {
                0 => back.consume_requests(u32::from(k), |_| consumed += 1).map(|_| ()),
                1 => back.next_request().map(|r| { if r.is_some() { consumed += 1; } }),
                _ => back.final_check_for_requests().map(|_| ()),
            };
            for _ in 0..k {
                if back.stage_response(val).is_ok() { answered += 1; }
            }
            let _ = back.push_responses();
            match (r, latched) {
                (Ok(()), None) => {}
                (Err(e), None) => {
                    prop_assert!(matches!(e, RingError::BadRequestProducer { .. }), "{:?}", e);
                    latched = Some(e);
                }
                (r, Some(l)) => prop_assert_eq!(r, Err(l), "errors latch"),
            }
            // Whatever the peer does, the back end never holds more than a ring of requests
            // it has not answered: it never reads a slot holding its own unread response.
            prop_assert!(consumed - answered <= u64::from(slots));
            prop_assert_eq!(u64::from(back.pending_responses()), consumed - answered);
        }
    }

    #[test]
    fn hostile_back_cannot_break_the_front_end(
        start in start_index(),
        steps in proptest::collection::vec((0u8..6, any::<u32>(), 0u8..8), 1..steps(100)),
    ) {
        let slots = 8u32;
        let mut pages = [Page::new()];
        let (mut front, _back, evil) = small_ring(&mut pages, slots as usize, start);
        let mut received = 0u64;
        let mut latched: Option<RingError> = None;
        for (what, val, k) in steps {
            let base = evil.load_u32(RSP_PROD);
            match what {
                0 => evil.store_u32(RSP_PROD, base.wrapping_add(u32::from(k))),
                1 => evil.store_u32(RSP_PROD, val),
                2 => evil.store_u32(RSP_EVENT, val),
                3 => evil.write_bytes(64 + 8 * usize::from(k), &u64::from(val).to_ne_bytes()),
                _ => {}
            }
            for _ in 0..k {
                if front.stage(u64::from(val)).is_err() { break; }
            }
            let _ = front.push_requests();
            let published = u64::from(front.outstanding()) + received;
            let r = match what % 3 {
                0 => front.poll_responses(|_| received += 1).map(|_| ()),
                1 => front.next_response().map(|r| { if r.is_some() { received += 1; } }),
                _ => front.final_check_for_responses().map(|_| ()),
            };
            match (r, latched) {
                (Ok(()), None) => {}
                (Err(e), None) => {
                    prop_assert!(matches!(e, RingError::BadResponseProducer { .. }), "{:?}", e);
                    latched = Some(e);
                }
                (r, Some(l)) => prop_assert_eq!(r, Err(l), "errors latch"),
            }
            // Never more responses than requests published.
            prop_assert!(received <= published);
            prop_assert!(front.outstanding() <= slots);
        }
    }
}
