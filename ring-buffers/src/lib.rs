//! Xen-compatible shared-memory I/O rings, hardened against a hostile peer.
//!
//! Two kinds of ring, both wire-compatible with Xen's public headers:
//!
//! * **Request/response rings** (`io/ring.h`): one shared page (or several contiguous pages)
//!   holding a 64-byte header and a power-of-two array of slots, each slot the union of a
//!   request and a response type. [`FrontRing`] stages and pushes requests and consumes
//!   responses; [`BackRing`] consumes requests and stages and pushes responses. This is what
//!   blkif, netif and friends use.
//! * **Byte-stream rings**: the console page ([`ConsoleRing`]: `in` 1024 bytes, `out` 2048) and
//!   the XenStore page ([`XenstoreRing`]: `req` and `rsp`, 1024 bytes each), over a generic
//!   [`ByteRing`] core.
//!
//! The crate is `no_std`, allocates nothing and knows nothing of event channels or grants: a
//! push returns a [`Notify`] value and the caller sends the event.
//!
//! # Getting the memory
//!
//! A ring never holds a reference into shared memory. It holds a [`RingMemory`]: by default a
//! [`SharedMem`], a pointer and a length accessed only by atomic word loads and stores.
//!
//! * From a mapped page (hypervisor, guest kernel, dom0 back end): the `unsafe`
//!   [`SharedMem::from_raw`], whose caller promises the mapping stays valid and is used only as
//!   this ring.
//! * In one process (tests, benchmarks, threads): the safe [`SharedMem::new`] over [`Page`]s,
//!   then `split()` into both ends.
//! * Memory of your own: any type that implements [`RingMemory`]. Every ring type takes the
//!   memory as its last type parameter, which defaults to `SharedMem`
//!   (`SharedRing<'a, Req, Rsp, M = SharedMem<'a>>`, `ConsoleRing<'a, M = SharedMem<'a>>`, ...),
//!   so the API is the same whatever the memory is. A model checker's memory is one such type:
//!   see [Checking your own ring code with loom](#checking-your-own-ring-code-with-loom).
//!
//! ```no_run
//! use core::ptr::NonNull;
//! use ring_buffers::{BackRing, SharedMem, SharedRing};
//! # type BlkReq = [u8; 112]; type BlkRsp = [u8; 16];
//! /// Dom0's blkback attaching to the ring page it mapped from the guest's grant.
//! fn attach(page_va: NonNull<u8>) -> Result<BackRing<'static, BlkReq, BlkRsp>, ring_buffers::SetupError> {
//!     // SAFETY: the page is mapped for as long as the device is connected, and this back end
//!     // is the only user of the mapping in this domain.
//!     let mem = unsafe { SharedMem::from_raw(page_va, 4096)? };
//!     Ok(BackRing::new(SharedRing::new(mem)?))
//! }
//! ```
//!
//! # A front-end loop
//!
//! Stage what fits, publish once, consume responses, and sleep only after
//! [`FrontRing::final_check_for_responses`] says nothing is pending. Here the back end runs in
//! a thread and the event channels are a condition variable, as in the crate's own tests.
//!
//! ```
//! use ring_buffers::{BackRing, FrontRing, Page, RingError, SharedMem, SharedRing};
//! use std::sync::{Condvar, Mutex};
//! use zerocopy::{FromBytes, Immutable, IntoBytes};
//!
//! #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Req { id: u64, sector: u64 }
//! #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Rsp { id: u64, status: i64 }
//!
//! /// Stand-in for an event channel: a pending bit and a way to block on it.
//! #[derive(Default)]
//! struct Evtchn { pending: Mutex<bool>, cv: Condvar }
//! impl Evtchn {
//!     fn send(&self) { *self.pending.lock().unwrap() = true; self.cv.notify_one(); }
//!     fn wait(&self) {
//!         let mut p = self.pending.lock().unwrap();
//!         while !*p { p = self.cv.wait(p).unwrap(); }
//!         *p = false;
//!     }
//! }
//!
//! fn frontend(front: &mut FrontRing<Req, Rsp>, to_back: &Evtchn, from_back: &Evtchn, n: u64)
//!     -> Result<(), RingError>
//! {
//!     let (mut next, mut done) = (0, 0);
//!     while done < n {
//!         while next < n && front.stage(Req { id: next, sector: next * 8 }).is_ok() {
//!             next += 1;
//!         }
//!         if front.push_requests().is_yes() {
//!             to_back.send();
//!         }
//!         let got = front.poll_responses(|rsp| assert_eq!(rsp.status, 0))?;
//!         done += u64::from(got);
//!         if got == 0 && !front.final_check_for_responses()? {
//!             from_back.wait(); // rsp_event is armed: the back end will notify
//!         }
//!     }
//!     Ok(())
//! }
//!
//! fn backend(back: &mut BackRing<Req, Rsp>, to_front: &Evtchn, from_front: &Evtchn, n: u64)
//!     -> Result<(), RingError>
//! {
//!     let mut done = 0;
//!     while done < n {
//!         // Copy each request out once; answer it; bound the work per round.
//!         let mut answers = [Rsp { id: 0, status: 0 }; 32];
//!         let mut k = 0;
//!         back.consume_requests(32, |req| { answers[k] = Rsp { id: req.id, status: 0 }; k += 1; })?;
//!         for rsp in &answers[..k] {
//!             back.stage_response(*rsp).expect("one response per request consumed");
//!         }
//!         done += k as u64;
//!         if back.push_responses().is_yes() {
//!             to_front.send();
//!         }
//!         if k == 0 && !back.final_check_for_requests()? {
//!             from_front.wait(); // req_event is armed: the front end will notify
//!         }
//!     }
//!     Ok(())
//! }
//!
//! let mut pages = [Page::new()];
//! let mut ring = SharedRing::<Req, Rsp>::new(SharedMem::new(&mut pages)).unwrap();
//! ring.init();
//! let (mut front, mut back) = ring.split();
//! let (to_back, to_front) = (Evtchn::default(), Evtchn::default());
//! std::thread::scope(|s| {
//!     s.spawn(|| backend(&mut back, &to_front, &to_back, 1000).unwrap());
//!     frontend(&mut front, &to_back, &to_front, 1000).unwrap();
//! });
//! ```
//!
//! # How the API maps to Xen's ring macros
//!
//! | Xen (`io/ring.h`) | here |
//! |---|---|
//! | `DEFINE_RING_TYPES(name, req, rsp)` | `SharedRing<Req, Rsp>` / `FrontRing` / `BackRing` |
//! | `__RING_SIZE`, `RING_SIZE` | [`ring_size`], `size()` |
//! | `SHARED_RING_INIT` | [`SharedRing::init`] |
//! | `FRONT_RING_INIT`, `FRONT_RING_ATTACH` | [`FrontRing::new`] ([`FrontRing::init`] does both inits), [`FrontRing::attach`] |
//! | `BACK_RING_INIT`, `BACK_RING_ATTACH` | [`BackRing::new`], [`BackRing::attach`] |
//! | `RING_FREE_REQUESTS`, `RING_FULL` | [`FrontRing::free_slots`], [`FrontRing::is_full`] |
//! | `RING_GET_REQUEST` + `req_prod_pvt++` | [`FrontRing::stage`] (copies in; returns [`Full`]) |
//! | `RING_PUSH_REQUESTS` | [`FrontRing::publish_requests`] |
//! | `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY` | [`FrontRing::push_requests`] → [`Notify`] |
//! | `RING_HAS_UNCONSUMED_RESPONSES` | [`FrontRing::unconsumed_responses`] |
//! | `RING_COPY_RESPONSE` + `rsp_cons++` | [`FrontRing::next_response`], [`FrontRing::poll_responses`] |
//! | `RING_FINAL_CHECK_FOR_RESPONSES` | [`FrontRing::final_check_for_responses`] |
//! | `RING_HAS_UNCONSUMED_REQUESTS` (bounded form) | [`BackRing::unconsumed_requests`] |
//! | `RING_COPY_REQUEST` + `req_cons++` | [`BackRing::next_request`], [`BackRing::consume_requests`] |
//! | `RING_REQUEST_PROD_OVERFLOW` | checked on every `req_prod` read: [`RingError::BadRequestProducer`] |
//! | `RING_RESPONSE_PROD_OVERFLOW` | checked (stricter) on every `rsp_prod` read: [`RingError::BadResponseProducer`] |
//! | `RING_REQUEST_CONS_OVERFLOW` | implied: the back end never reads past `rsp_prod_pvt + size` |
//! | `RING_GET_RESPONSE` + `rsp_prod_pvt++` | [`BackRing::stage_response`] |
//! | `RING_PUSH_RESPONSES` | [`BackRing::publish_responses`] |
//! | `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY` | [`BackRing::push_responses`] → [`Notify`] |
//! | `RING_FINAL_CHECK_FOR_REQUESTS` | [`BackRing::final_check_for_requests`] |
//! | console `MASK_XENCONS_IDX` rings | [`ConsoleGuest`], [`ConsoleBackend`] |
//! | XenStore `MASK_XENSTORE_IDX` rings | [`XenstoreGuest`], [`XenstoreServer`] |
//!
//! Beyond the macros: [`FrontRing::send`] / [`BackRing::respond`] (stage and push one item),
//! and the batch forms [`FrontRing::stage_iter`], [`FrontRing::stage_requests`],
//! [`BackRing::consume_requests`], [`BackRing::consume_requests_into`],
//! [`BackRing::stage_responses`], [`FrontRing::poll_responses`],
//! [`FrontRing::consume_responses_into`] (iterators, closures or slices; one bounds check per
//! contiguous run of slots). Batching is what makes the ring fast:
//! stage many, push once (one release store and one fence per batch); consume a batch with one
//! read of the peer's index. An end re-reads the peer's producer only when the entries it has
//! already seen run out.
//!
//! # Byte rings (console, XenStore)
//!
//! `write` copies as much as fits and returns a [`Transfer`] (bytes moved, a partial count when
//! the ring is full); `read` copies what is there. These pages have no event index, so
//! [`Transfer::notify`] is [`Notify::Yes`] exactly when bytes moved: the reader must hear about
//! new data, and a writer blocked on a full ring about new space. A peer whose index breaks
//! `prod - cons <= size` gets [`RingError::BadProducer`] / [`RingError::BadConsumer`] (a
//! xenstored would then set `XENSTORE_ERROR_RINGIDX` through [`XenstoreControl`]).
//!
//! | page | guest end | dom0 / xenstored end |
//! |---|---|---|
//! | console (`in` 1024 @0, `out` 2048 @1024, indices @3072) | [`ConsoleGuest`]: writes `out`, reads `in` | [`ConsoleBackend`]: writes `in`, reads `out` |
//! | XenStore (`req` @0, `rsp` @1024, indices @2048, control @2064) | [`XenstoreGuest`]: writes `req`, reads `rsp` | [`XenstoreServer`]: reads `req`, writes `rsp` |
//!
//! # Against a hostile peer
//!
//! * No reference into shared memory; every access is an atomic load or store, and every slot
//!   or byte is copied out exactly once into a value the peer cannot touch (no double fetch).
//! * Each end keeps its indices privately and never re-reads them from the page (Xen's
//!   `RING_PUSH_*_AND_CHECK_NOTIFY` reads the old producer back from the page; we use our own
//!   record, which is equal for an honest peer).
//! * The peer's producer index is validated on every read: a back end rejects a `req_prod` more
//!   than a ring's worth past its responses or moving backwards; a front end rejects an
//!   `rsp_prod` past the requests it published or moving backwards; byte rings reject
//!   `prod - cons > size`. A violation is a [`RingError`] carrying the values seen; the end then
//!   stays broken (the same error every time) so the caller can disconnect.
//! * Every loop is bounded by the ring size (or the caller's buffer); nothing panics on peer
//!   input. The peer's event indices only decide [`Notify`] values.
//!
//! # Memory ordering
//!
//! Xen's barriers, as Rust atomics, each commented where it is used: a producer index is stored
//! with `Release` (Xen's `wmb` before it) and loaded with `Acquire` (the consumer's `rmb` after
//! it); the push-and-check-notify and final-check pairs put a `fence(SeqCst)` (Xen's `mb`)
//! between storing one index and loading the other, so that a sleeping peer is always woken.
//!
//! # Verification
//!
//! * Unit, property and thread tests: `cargo test -p ring-buffers`.
//! * loom models (both ends with event channels and notification suppression, wrap-around of
//!   the u32 indices, batch APIs, malicious front end, back end and byte-ring writer, two
//!   injected faults the models must catch, and the user's model below):
//!   `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom cargo test
//!   -p ring-buffers --release --test loom`; deeper with `LOOM_MAX_PREEMPTIONS=4` or `5`.
//! * Miri over the unit and integration tests: `./scripts/miri` (nightly toolchain).
//! * Benchmarks against `rtrb` and crossbeam's `ArrayQueue`: `./scripts/bench-rings`; figures in
//!   `docs/BENCHMARKS.md`.
//!
//! # Checking your own ring code with loom
//!
//! To stress-test code that drives these rings (your front end's sleep/wake logic, say) with
//! [loom](https://docs.rs/loom), run the rings on memory made of loom's atomics, so that loom
//! sees and reorders every access they make. Nothing in this crate is switched by `cfg(loom)`:
//! you implement [`RingMemory`] for a loom-backed type and pass it as the rings' memory
//! parameter. The file below is a complete model; it is this crate's
//! `tests/loom/user_model.rs`, which the crate's loom run executes, so it compiles and passes
//! as shown. Copy it into your crate's `tests/`, with
//! `[target.'cfg(loom)'.dev-dependencies] loom = "0.7"` in your `Cargo.toml` and
//! `#![cfg(loom)]` at the top of the test file, and run it with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test <file>`.
//!
//! Its module comment lists the loom rules it follows; one matters beyond loom: share with
//! `std::sync::Arc`, not `loom::sync::Arc`, or a failing model aborts the test binary.
//!
//! ```rust,ignore
#![doc = include_str!("../tests/loom/user_model.rs")]
//! ```

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod back;
mod byte_ring;
mod console;
mod error;
mod front;
pub mod layout;
mod memory;
mod pair;
mod shm;
mod sring;
mod xenstore;

#[cfg(test)]
mod tests;

pub use back::BackRing;
pub use byte_ring::{ByteReader, ByteRing, ByteRingLayout, ByteWriter, Transfer};
pub use console::{CONSOLE_IN, CONSOLE_OUT, ConsoleBackend, ConsoleGuest, ConsoleRing};
pub use error::{Full, Notify, RingError, SetupError};
pub use front::FrontRing;
pub use layout::ring_size;
pub use memory::{Access, RingMemory};
pub use shm::{PAGE_SIZE, Page, SharedMem};
pub use sring::{RingItem, SharedRing};
pub use xenstore::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_COMM, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO,
    XENSTORE_ERROR_RINGIDX, XENSTORE_RECONNECT, XENSTORE_REQ, XENSTORE_RING_SIZE, XENSTORE_RSP,
    XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_SERVER_FEATURE_RECONNECTION, XenstoreControl,
    XenstoreGuest, XenstoreRing, XenstoreServer,
};
