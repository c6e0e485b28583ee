//! loom models of the rings: a front thread and a back thread (or writer and reader), event
//! channels modelled as a pending bit plus park/unpark, and a malicious peer thread.
//!
//! Run (bounded, as in `./scripts/test`):
//!   RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ring-buffers --release --test loom
//! On the project's 2-core machines the models take about 0.3 s at a bound of 2, 2.5 s at 3,
//! 10 s at 4 and 40 s at 5 (plus about a minute to build loom the first time). Go deeper with
//! LOOM_MAX_PREEMPTIONS=5 or 6 (an unbounded run was stopped unfinished after 13 minutes).
//!
//! The rings run on `LoomMem`, the loom memory of the user's model in `user_model.rs` (the
//! crate docs show that file), so loom permutes every index access, slot copy and fence. The
//! event channel's send sets the pending bit and unparks the receiver (loom treats the unpark
//! as synchronising, like Xen's hypercall); the executions that matter for lost wake-ups are
//! the ones where no event is sent at all. A lost wake-up shows up as a loom deadlock (both
//! threads parked), a lost or reordered item as a failed assertion, a hang in the crate as
//! loom's branch limit. `Mutant` wraps `LoomMem` to inject two faults the models must catch.

#![cfg(loom)]

mod user_model;

use std::sync::atomic::Ordering::{self, Relaxed, SeqCst};

use ring_buffers::layout::{REQ_EVENT, REQ_PROD, RSP_PROD};
use ring_buffers::{Access, ByteRing, ByteRingLayout, RingError, RingMemory, SharedRing};
use user_model::{Evtchn, LoomMem};

/// Fault injected into the ring memory, to check that the models catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutation {
    None,
    /// Every `fence(SeqCst)` (Xen's `mb()`) dropped: the push-and-check-notify / final-check
    /// handshake then loses wake-ups.
    NoFullFence,
    /// The Release stores and Acquire loads of ring indices made Relaxed (Xen's `wmb`/`rmb`):
    /// a consumer can then see an index before the slot contents behind it.
    RelaxedIndices,
}

/// `LoomMem` with a [`Mutation`]: another `RingMemory`, wrapping the first.
#[derive(Clone, Debug)]
struct Mutant {
    mem: LoomMem,
    mutation: Mutation,
}

impl Mutant {
    fn order(&self, order: Ordering) -> Ordering {
        if self.mutation == Mutation::RelaxedIndices { Relaxed } else { order }
    }
}

impl RingMemory for Mutant {
    fn len(&self) -> usize {
        self.mem.len()
    }
    fn load_u32(&self, a: Access, off: usize, order: Ordering) -> u32 {
        self.mem.load_u32(a, off, self.order(order))
    }
    fn store_u32(&self, a: Access, off: usize, val: u32, order: Ordering) {
        self.mem.store_u32(a, off, val, self.order(order));
    }
    fn read_bytes(&self, a: Access, off: usize, dst: &mut [u8]) {
        self.mem.read_bytes(a, off, dst);
    }
    fn write_bytes(&self, a: Access, off: usize, src: &[u8]) {
        self.mem.write_bytes(a, off, src);
    }
    fn fence(&self, a: Access, order: Ordering) {
        if !(self.mutation == Mutation::NoFullFence && order == SeqCst) {
            self.mem.fence(a, order);
        }
    }
    fn duplicate(&self, a: Access) -> Self {
        Mutant { mem: self.mem.duplicate(a), mutation: self.mutation }
    }
}

/// A ring of 2 slots of u32 requests and u32 responses (64 + 2 * 4 bytes), initialised as if
/// `start` requests had passed through it.
fn two_slot_ring(start: u32, mutation: Mutation) -> SharedRing<'static, u32, u32, Mutant> {
    let mem = Mutant { mem: LoomMem::new(72), mutation };
    let mut ring = SharedRing::<u32, u32, Mutant>::new(mem).unwrap();
    assert_eq!(ring.size(), 2);
    ring.init_at(start);
    ring
}

/// Front sends `n` requests (more than the ring holds, so slots are reused), back answers each;
/// both sleep on their event channel when the final check says so. Every request and every
/// response must arrive exactly once, in order, and nobody may sleep forever.
///
/// The model never joins the back thread: a late event (unpark) landing on a thread blocked in
/// `join` breaks loom's join bookkeeping. The front waits on its event channel instead, which
/// tolerates stray wake-ups, until the back end says it is done.
fn round_trip(start: u32, n: u32, batch_api: bool, mutation: Mutation) {
    loom::model(move || {
        let (mut front, mut back) = two_slot_ring(start, mutation).split_at(start);
        let (to_back, to_front, done) = (Evtchn::new(), Evtchn::new(), Evtchn::new());
        let front_thread = loom::thread::current();
        let (tb, tf, d) = (to_back.clone(), to_front.clone(), done.clone());
        let back_thread = loom::thread::spawn(move || {
            let mut seen = 0;
            while seen < n {
                let mut got = 0;
                if batch_api {
                    let mut buf = [0u32; 2];
                    let k = back.consume_requests_into(&mut buf).unwrap();
                    for (i, req) in buf[..k].iter_mut().enumerate() {
                        assert_eq!(*req, 100 + seen + i as u32, "request lost or reordered");
                        *req += 1000;
                    }
                    assert_eq!(back.stage_responses(&buf[..k]), k);
                    seen += k as u32;
                    got = k;
                } else {
                    while let Some(req) = back.next_request().unwrap() {
                        assert_eq!(req, 100 + seen, "request lost, duplicated or reordered");
                        back.stage_response(req + 1000).unwrap();
                        seen += 1;
                        got += 1;
                    }
                }
                if back.push_responses().is_yes() {
                    tf.send(&front_thread);
                }
                if got == 0 && !back.final_check_for_requests().unwrap() {
                    tb.wait();
                }
            }
            d.send(&front_thread);
        });
        let back_handle = back_thread.thread().clone();
        let (mut sent, mut received) = (0, 0);
        while received < n {
            if batch_api {
                let reqs: Vec<u32> = (100 + sent..100 + n).collect();
                sent += front.stage_requests(&reqs) as u32;
            } else {
                while sent < n && front.stage(100 + sent).is_ok() {
                    sent += 1;
                }
            }
            if front.push_requests().is_yes() {
                to_back.send(&back_handle);
            }
            let got = if batch_api {
                let mut buf = [0u32; 2];
                let k = front.consume_responses_into(&mut buf).unwrap();
                for rsp in &buf[..k] {
                    assert_eq!(*rsp, 1100 + received, "response lost or reordered");
                    received += 1;
                }
                k as u32
            } else {
                front
                    .poll_responses(|rsp| {
                        assert_eq!(rsp, 1100 + received, "response lost, duplicated or reordered");
                        received += 1;
                    })
                    .unwrap()
            };
            if got == 0 && !front.final_check_for_responses().unwrap() {
                to_front.wait();
            }
        }
        done.wait();
    });
}

#[test]
fn round_trip_exactly_once_in_order() {
    round_trip(0, 4, false, Mutation::None);
}

#[test]
fn round_trip_across_u32_wrap() {
    round_trip(u32::MAX - 1, 3, false, Mutation::None);
}

#[test]
fn round_trip_batch_api_across_u32_wrap() {
    round_trip(u32::MAX - 2, 4, true, Mutation::None);
}

/// The same model with every `fence(SeqCst)` removed (in the model's memory only): loom must
/// find the lost wake-up, which shows that the suite can fail and that the fences are needed.
#[test]
#[should_panic(expected = "deadlock")]
fn lost_wakeup_found_without_full_fence() {
    round_trip(0, 3, false, Mutation::NoFullFence);
}

/// The same model with the index Release/Acquire pairs weakened to Relaxed: loom must see a
/// consumer read a slot before the producer's write to it lands.
#[test]
#[should_panic(expected = "lost, duplicated or reordered")]
fn stale_slot_found_without_release_acquire() {
    round_trip(0, 3, false, Mutation::RelaxedIndices);
}

/// A front end that rewrites `req_prod`, `req_event` and slots at will. The honest back end,
/// in a bounded loop, must only ever get requests or `BadRequestProducer` (with the value the
/// peer wrote), never panic, never read past its bound, and stay broken once broken.
#[test]
fn malicious_front_end() {
    loom::model(|| {
        let mem = LoomMem::new(72);
        let evil = mem.clone();
        let mut ring = SharedRing::<u32, u32, LoomMem>::new(mem).unwrap();
        ring.init();
        let (_front, mut back) = ring.split();
        let peer = loom::thread::spawn(move || {
            evil.poke_u32(64, 0xdead);
            evil.poke_u32(REQ_PROD, 1);
            evil.poke_u32(REQ_EVENT, 0);
            evil.poke_u32(68, 0xbeef);
            evil.poke_u32(REQ_PROD, 7); // past a 2-slot ring
        });
        let mut consumed = 0u32;
        let mut broken = None;
        for _ in 0..4 {
            let step = match back.next_request() {
                Ok(Some(req)) => {
                    assert!(
                        req == 0 || req == 0xdead || req == 0xbeef,
                        "torn or invented: {req:#x}"
                    );
                    consumed += 1;
                    back.stage_response(req).unwrap();
                    let _ = back.push_responses();
                    Ok(())
                }
                Ok(None) => back.final_check_for_requests().map(|_| ()),
                Err(e) => Err(e),
            };
            match (step, broken) {
                (Ok(()), None) => {}
                (Err(e), None) => {
                    assert!(
                        matches!(e, RingError::BadRequestProducer { req_prod: 7, .. }),
                        "{e:?}"
                    );
                    broken = Some(e);
                }
                (step, Some(b)) => assert_eq!(step, Err(b), "errors latch"),
            }
            assert!(back.pending_responses() <= 2);
        }
        assert!(consumed <= 1, "only one request was ever validly published");
        peer.join().unwrap();
    });
}

/// A back end that publishes responses it never produced. The honest front end gets either
/// real responses or `BadResponseProducer`, and never more responses than requests published.
#[test]
fn malicious_back_end() {
    loom::model(|| {
        let mem = LoomMem::new(72);
        let evil = mem.clone();
        let mut ring = SharedRing::<u32, u32, LoomMem>::new(mem).unwrap();
        ring.init();
        let (mut front, _back) = ring.split();
        let peer = loom::thread::spawn(move || {
            evil.poke_u32(RSP_PROD, 1);
            evil.poke_u32(RSP_PROD, 3);
        });
        front.stage(5).unwrap();
        let _ = front.push_requests();
        let mut got = 0u32;
        let mut broken = None;
        for _ in 0..3 {
            let step = front.poll_responses(|_| got += 1).map(|_| ());
            match (step, broken) {
                (Ok(()), None) => {}
                (Err(e), None) => {
                    assert!(
                        matches!(e, RingError::BadResponseProducer { req_prod: 1, .. }),
                        "{e:?}"
                    );
                    broken = Some(e);
                }
                (step, Some(b)) => assert_eq!(step, Err(b), "errors latch"),
            }
            assert!(got <= 1, "more responses than requests");
        }
        peer.join().unwrap();
    });
}

/// A 4-byte byte ring: data 0..4, cons @4, prod @8.
const TINY: ByteRingLayout = ByteRingLayout { data: 0, size: 4, cons: 4, prod: 8 };

/// Writer sends 6 bytes through a 4-byte ring (so it must wait for space and the data wraps),
/// reader reads 3 at a time; both sleep on events when they cannot progress. Bytes arrive
/// exactly once, in order, and nobody sleeps forever.
#[test]
fn byte_ring_stream() {
    loom::model(|| {
        let (mut w, mut r) = ByteRing::new(LoomMem::new(12), TINY).unwrap().split();
        let (data_ev, space_ev, done) = (Evtchn::new(), Evtchn::new(), Evtchn::new());
        let writer_thread = loom::thread::current();
        let (de, se, d) = (data_ev.clone(), space_ev.clone(), done.clone());
        let reader = loom::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 6 {
                let mut buf = [0u8; 3];
                let t = r.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..t.bytes]);
                if t.notify.is_yes() {
                    se.send(&writer_thread);
                } else {
                    de.wait();
                }
            }
            assert_eq!(got, b"abcdef");
            d.send(&writer_thread);
        });
        let reader_handle = reader.thread().clone();
        let msg = b"abcdef";
        let mut sent = 0;
        while sent < msg.len() {
            let t = w.write(&msg[sent..]).unwrap();
            sent += t.bytes;
            if t.notify.is_yes() {
                data_ev.send(&reader_handle);
            } else {
                space_ev.wait();
            }
        }
        done.wait();
    });
}

/// A writer that lies about its producer index: the reader gets bytes or `BadProducer`, never
/// more than the ring holds, never a panic.
#[test]
fn malicious_byte_writer() {
    loom::model(|| {
        let mem = LoomMem::new(12);
        let evil = mem.clone();
        let mut r = ByteRing::new(mem, TINY).unwrap().reader();
        let peer = loom::thread::spawn(move || {
            evil.poke_bytes(0, b"xy");
            evil.poke_u32(TINY.prod, 2);
            evil.poke_u32(TINY.prod, 9);
        });
        let mut total = 0;
        let mut broken = None;
        for _ in 0..3 {
            let mut buf = [0u8; 8];
            match (r.read(&mut buf), broken) {
                (Ok(t), None) => total += t.bytes,
                (Err(e), None) => {
                    assert!(matches!(e, RingError::BadProducer { prod: 9, .. }), "{e:?}");
                    broken = Some(e);
                }
                (res, Some(b)) => assert_eq!(res, Err(b), "errors latch"),
            }
            assert!(total <= 2);
        }
        peer.join().unwrap();
    });
}
