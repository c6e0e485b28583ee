//! Checking your own ring code with loom: a model of a front end and a back end on a
//! ring-buffers ring, the way a user of the crate writes one. It is compiled and run by the
//! crate's loom stage (`RUSTFLAGS="--cfg loom" cargo test -p ring-buffers --release --test
//! loom`) and shown, whole, in the crate docs.
//!
//! The rings are generic over the memory they live in ([`RingMemory`]). For loom, that memory
//! must be loom's atomics, so that loom sees (and reorders) every index access, slot copy and
//! fence the rings make: [`LoomMem`] below is such a memory, in about 80 lines. Nothing else
//! changes: the same `SharedRing`, `FrontRing` and `BackRing`, with `LoomMem` as their last
//! type parameter. In your own crate, put the model in a test file behind `#![cfg(loom)]`,
//! with `[target.'cfg(loom)'.dev-dependencies] loom = "0.7"`, and run it with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test <file>`.
//!
//! Rules of loom 0.7 a model must follow, or loom reports a failure that is not one (or
//! aborts):
//! - Create every loom object (atomics, threads) inside `loom::model`.
//! - Share with `std::sync::Arc`, not `loom::sync::Arc`. loom must see the atomics, not the
//!   reference counts; and when a model fails (a deadlock, a failed assertion), loom tears the
//!   execution down, then a `loom::sync::Arc` dropped while the failure unwinds panics again in
//!   its destructor, which aborts the whole test binary: every other test's result is lost, and
//!   a `#[should_panic]` model can never pass.
//! - Don't `join` a thread that may still `unpark` the joining one: an unpark that lands on a
//!   thread blocked in `join` breaks loom's bookkeeping. Wait for a "done" event instead, as
//!   below.
//! - Use read-modify-writes (`swap`) for a flag two threads both write, as Xen's
//!   `test_and_set_bit` does: with a plain store, loom 0.7 may let the other side's `swap`
//!   read a stale value and report a deadlock that cannot happen.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, AtomicU32};
use loom::thread::Thread;
use ring_buffers::{Access, RingMemory, SharedRing};

/// Ring memory made of loom atomics: `len` bytes as 32-bit words. Cloning it gives another
/// handle on the same bytes (for the other end of a ring, or for a thread playing a hostile
/// peer with the `poke` methods).
#[derive(Clone)]
pub struct LoomMem {
    words: Arc<Vec<AtomicU32>>,
    len: usize,
}

impl LoomMem {
    /// `len` zeroed bytes (rounded up to whole words). Call inside `loom::model`.
    pub fn new(len: usize) -> Self {
        let words = (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect();
        LoomMem { words: Arc::new(words), len }
    }

    /// A hostile peer's write of the word at `off` (relaxed: it promises no ordering at all).
    pub fn poke_u32(&self, off: usize, val: u32) {
        self.words[off / 4].store(val, Ordering::Relaxed);
    }

    /// A hostile peer's write of bytes at `off`.
    pub fn poke_bytes(&self, off: usize, src: &[u8]) {
        self.copy_in(off, src);
    }

    // Bytes go word by word. A partial word is read whole, and written by clearing and then
    // setting only its bytes being written (two read-modify-writes that leave the neighbouring
    // bytes, which may be the other end's, alone).
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        let mut i = 0;
        while i < dst.len() {
            let (w, b) = ((off + i) / 4, (off + i) % 4);
            let n = (4 - b).min(dst.len() - i);
            let word = self.words[w].load(Ordering::Relaxed).to_ne_bytes();
            dst[i..i + n].copy_from_slice(&word[b..b + n]);
            i += n;
        }
    }

    fn copy_in(&self, off: usize, src: &[u8]) {
        let mut i = 0;
        while i < src.len() {
            let (w, b) = ((off + i) / 4, (off + i) % 4);
            let n = (4 - b).min(src.len() - i);
            let (mut mask, mut bits) = ([0u8; 4], [0u8; 4]);
            mask[b..b + n].fill(0xff);
            bits[b..b + n].copy_from_slice(&src[i..i + n]);
            if n == 4 {
                self.words[w].store(u32::from_ne_bytes(bits), Ordering::Relaxed);
            } else {
                self.words[w].fetch_and(!u32::from_ne_bytes(mask), Ordering::Relaxed);
                self.words[w].fetch_or(u32::from_ne_bytes(bits), Ordering::Relaxed);
            }
            i += n;
        }
    }
}

impl std::fmt::Debug for LoomMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoomMem").field("len", &self.len).finish()
    }
}

impl RingMemory for LoomMem {
    fn len(&self) -> usize {
        self.len
    }

    fn load_u32(&self, _: Access, off: usize, order: Ordering) -> u32 {
        self.words[off / 4].load(order)
    }

    fn store_u32(&self, _: Access, off: usize, val: u32, order: Ordering) {
        self.words[off / 4].store(val, order);
    }

    fn read_bytes(&self, _: Access, off: usize, dst: &mut [u8]) {
        self.copy_out(off, dst);
    }

    fn write_bytes(&self, _: Access, off: usize, src: &[u8]) {
        self.copy_in(off, src);
    }

    fn fence(&self, _: Access, order: Ordering) {
        loom::sync::atomic::fence(order);
    }

    fn duplicate(&self, _: Access) -> Self {
        self.clone()
    }
}

/// An event channel: the sender sets a pending bit and wakes the receiver's thread; the
/// receiver sleeps until the bit is set, and clears it.
pub struct Evtchn {
    pending: AtomicBool,
}

impl Evtchn {
    pub fn new() -> Arc<Self> {
        Arc::new(Evtchn { pending: AtomicBool::new(false) })
    }

    pub fn send(&self, to: &Thread) {
        self.pending.swap(true, Ordering::Release);
        to.unpark();
    }

    pub fn wait(&self) {
        while !self.pending.swap(false, Ordering::Acquire) {
            loom::thread::park();
        }
    }
}

/// Three requests through a two-slot ring (so a slot is reused), each answered; both ends
/// sleep on their event channel whenever the ring's final check says there is nothing to do.
/// loom runs every interleaving: a lost wake-up is a deadlock, a lost or reordered item a
/// failed assertion.
#[test]
fn user_model_every_request_answered_once_in_order() {
    loom::model(|| {
        // 64-byte header + 2 slots of u32: a two-slot ring.
        let mut ring = SharedRing::<u32, u32, LoomMem>::new(LoomMem::new(72)).unwrap();
        ring.init();
        let (mut front, mut back) = ring.split();
        let (to_back, to_front, done) = (Evtchn::new(), Evtchn::new(), Evtchn::new());
        let front_thread = loom::thread::current();
        let (tb, tf, d) = (to_back.clone(), to_front.clone(), done.clone());

        let back_thread = loom::thread::spawn(move || {
            let mut answered = 0;
            while answered < 3 {
                let mut got = 0;
                while let Some(req) = back.next_request().unwrap() {
                    back.stage_response(req * 10).unwrap();
                    got += 1;
                }
                answered += got;
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
        let (mut sent, mut received) = (0u32, 0u32);
        while received < 3 {
            while sent < 3 && front.stage(sent + 1).is_ok() {
                sent += 1;
            }
            if front.push_requests().is_yes() {
                to_back.send(&back_handle);
            }
            let got = front
                .poll_responses(|rsp| {
                    received += 1;
                    assert_eq!(rsp, received * 10, "response lost, duplicated or reordered");
                })
                .unwrap();
            if got == 0 && !front.final_check_for_responses().unwrap() {
                to_front.wait();
            }
        }
        done.wait();
    });
}
