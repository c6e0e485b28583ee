//! Real threads: both ends running concurrently with event channels and notification
//! suppression (a lost wake-up shows up as a timed-out wait), and a hostile thread hammering
//! the indices while an honest back end keeps going. The hostile thread writes with the same
//! access widths as the honest end, which keeps the test inside Rust's memory model.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::*;
use crate::RingError;
use crate::layout::REQ_PROD;

/// An event channel: a pending bit and a blocking wait that gives up after a while, so that a
/// lost wake-up fails the test instead of hanging it.
#[derive(Default)]
struct Evtchn {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Evtchn {
    fn send(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// `false` if nothing arrived in time.
    fn wait(&self) -> bool {
        let guard = self.pending.lock().unwrap();
        let (mut p, _) =
            self.cv.wait_timeout_while(guard, Duration::from_secs(10), |p| !*p).unwrap();
        std::mem::take(&mut *p)
    }
}

fn items() -> u64 {
    if cfg!(miri) { 200 } else { 200_000 }
}

#[test]
fn two_threads_with_event_channels() {
    let n = items();
    let mut pages = [Page::new()];
    let (mut front, mut back, _) = small_ring(&mut pages, 16, u32::MAX - 1000);
    let (to_back, to_front) = (Evtchn::default(), Evtchn::default());
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut seen = 0u64;
            while seen < n {
                let mut k = 0;
                back.consume_requests(7, |r| {
                    assert_eq!(r, seen + k);
                    k += 1;
                })
                .unwrap();
                for i in 0..k {
                    back.stage_response((seen + i) as u32).unwrap();
                }
                seen += k;
                if back.push_responses().is_yes() {
                    to_front.send();
                }
                if k == 0 && !back.final_check_for_requests().unwrap() {
                    assert!(to_back.wait(), "back end never woken: lost wake-up");
                }
            }
        });
        let (mut sent, mut done) = (0u64, 0u64);
        while done < n {
            let burst = 1 + sent % 5;
            let mut k = 0;
            while sent < n && k < burst && front.stage(sent).is_ok() {
                sent += 1;
                k += 1;
            }
            if front.push_requests().is_yes() {
                to_back.send();
            }
            let got = front
                .poll_responses(|r| {
                    assert_eq!(r, done as u32);
                    done += 1;
                })
                .unwrap();
            if got == 0 && !front.final_check_for_responses().unwrap() {
                assert!(to_front.wait(), "front end never woken: lost wake-up");
            }
        }
    });
}

#[test]
fn hostile_thread_cannot_hang_or_crash_the_back_end() {
    // u64 requests and u64 responses: the honest end's slot accesses are then all 8-byte
    // words, the same width the hostile thread writes with.
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages).shrink_to(64 + 8 * 8);
    let evil = mem.peer_view();
    let mut ring = SharedRing::<u64, u64>::new(mem).unwrap();
    ring.init();
    let (_front, mut back) = ring.split();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut x = 0x9E37_79B9u32;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Plausible producer values most of the time, garbage sometimes; slot contents
                // rewritten underneath the reader (u64 words, as the honest end reads them).
                let prod = if x.is_multiple_of(4) {
                    x
                } else {
                    evil.load_u32(REQ_PROD).wrapping_add(x % 3)
                };
                evil.store_u32(REQ_PROD, prod);
                evil.write_bytes(64 + 8 * (x as usize % 8), &u64::from(x).to_ne_bytes());
            }
        });
        let rounds = if cfg!(miri) { 50 } else { 200_000 };
        let mut consumed = 0u64;
        let mut answered = 0u64;
        for _ in 0..rounds {
            match back.consume_requests(u32::MAX, |_| consumed += 1) {
                Ok(_) => {}
                Err(RingError::BadRequestProducer { .. }) => break,
                Err(e) => panic!("unexpected error {e:?}"),
            }
            while back.stage_response(0).is_ok() {
                answered += 1;
            }
            let _ = back.push_responses();
            assert!(consumed - answered <= 8);
        }
        stop.store(true, Ordering::Relaxed);
    });
}
