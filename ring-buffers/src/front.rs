//! [`FrontRing`]: the front end of a request/response ring (requests out, responses in), with
//! Xen's `FRONT_RING_*` private indices and the front-end macros as methods.
//!
//! Trusts only its private indices. `rsp_prod` read from the page is validated before use
//! against what this end has published; everything else the peer writes (`req_event`, slot
//! contents) is either just a notification hint or copied out once and handed to the caller.

#![forbid(unsafe_code)]

use core::marker::PhantomData;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use crate::error::{Full, Notify, RingError};
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::memory::{Mem, RingMemory};
use crate::shm::SharedMem;
use crate::sring::{
    Advance, Items, RingItem, SharedRing, read_slots, slot_offset, slot_runs, write_slots,
};

/// The front end of a request/response ring: stages and pushes requests, consumes responses.
///
/// Private state, as Xen's `*_front_ring` plus what hardening needs:
/// `req_prod_pvt` (staged), `req_prod` (last published: never re-read from the page),
/// `rsp_cons` (consumed), `rsp_prod_seen` (last validated `rsp_prod`), and a latched error.
///
/// Invariant, in wrapping u32 order:
/// `rsp_cons <= rsp_prod_seen <= req_prod <= req_prod_pvt <= rsp_cons + size`.
pub struct FrontRing<'a, Req, Rsp, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    size: u32,
    req_prod_pvt: u32,
    req_prod: u32,
    rsp_cons: u32,
    rsp_prod_seen: u32,
    broken: Option<RingError>,
    _items: Items<'a, Req, Rsp>,
}

impl<Req, Rsp, M: RingMemory> core::fmt::Debug for FrontRing<'_, Req, Rsp, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrontRing")
            .field("size", &self.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod", &self.req_prod)
            .field("rsp_cons", &self.rsp_cons)
            .field("rsp_prod_seen", &self.rsp_prod_seen)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<'a, Req: RingItem, Rsp: RingItem, M: RingMemory> FrontRing<'a, Req, Rsp, M> {
    /// `SHARED_RING_INIT` then `FRONT_RING_INIT`: the usual way a front end creates its ring.
    pub fn init(mut ring: SharedRing<'a, Req, Rsp, M>) -> Self {
        ring.init();
        Self::attach(ring, 0)
    }

    /// `FRONT_RING_INIT`: attach at index 0 to a ring whose header is already initialised.
    pub fn new(ring: SharedRing<'a, Req, Rsp, M>) -> Self {
        Self::attach(ring, 0)
    }

    /// `FRONT_RING_ATTACH`: attach with all private indices at `index` (reconnecting to a ring
    /// whose state is known, e.g. after migration).
    pub fn attach(ring: SharedRing<'a, Req, Rsp, M>, index: u32) -> Self {
        let (mem, size) = ring.into_parts();
        FrontRing {
            mem,
            size,
            req_prod_pvt: index,
            req_prod: index,
            rsp_cons: index,
            rsp_prod_seen: index,
            broken: None,
            _items: PhantomData,
        }
    }

    /// Number of slots (`RING_SIZE`).
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can still be staged (`RING_FREE_REQUESTS`).
    #[inline]
    pub fn free_slots(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// No request can be staged until a response is consumed (`RING_FULL`).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.free_slots() == 0
    }

    /// Requests staged but not yet pushed.
    #[inline]
    pub fn staged(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod)
    }

    /// Requests staged or in flight whose response has not been consumed yet.
    #[inline]
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// The error that broke this end, if any.
    pub fn error(&self) -> Option<RingError> {
        self.broken
    }

    /// Copies `req` into the next free slot (`RING_GET_REQUEST` + `req_prod_pvt++`). The back
    /// end cannot see it until [`push_requests`](Self::push_requests).
    #[inline]
    pub fn stage(&mut self, req: Req) -> Result<(), Full> {
        if self.req_prod_pvt.wrapping_sub(self.rsp_cons) == self.size {
            return Err(Full);
        }
        let off = slot_offset(self.req_prod_pvt, self.size, SharedRing::<Req, Rsp, M>::SLOT_SIZE);
        self.mem.write(off, &req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Stages as many of `reqs` as fit, in order, and returns how many: the batch form of
    /// [`stage`](Self::stage), with one bounds check and at most two contiguous copies.
    #[inline]
    pub fn stage_requests(&mut self, reqs: &[Req]) -> usize {
        let n = self.free_slots().min(u32::try_from(reqs.len()).unwrap_or(u32::MAX));
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        write_slots(&self.mem, self.size, slot, self.req_prod_pvt, &reqs[..n as usize]);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(n);
        n as usize
    }

    /// Stages requests from `reqs` until it runs out or the ring is full, in order; returns how
    /// many. The batch form of [`stage`](Self::stage) for requests made on the fly: each is
    /// built straight into its slot's copy, with one bounds check per contiguous run. An item
    /// the iterator yields after the ring is full is not taken from it.
    #[inline]
    pub fn stage_iter(&mut self, reqs: impl IntoIterator<Item = Req>) -> usize {
        let mut reqs = reqs.into_iter();
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        let mut done = 0;
        for (pos, len) in slot_runs(self.req_prod_pvt, self.free_slots(), self.size) {
            let off = slot_offset(pos, self.size, slot);
            let k = self.mem.write_each(off, slot, len as usize, reqs.by_ref());
            done += k;
            self.req_prod_pvt = self.req_prod_pvt.wrapping_add(k as u32);
            if k < len as usize {
                break;
            }
        }
        done
    }

    /// Publishes every staged request and says whether the back end must be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`). One release store and one full fence per call,
    /// however many requests were staged.
    #[inline]
    pub fn push_requests(&mut self) -> Notify {
        // Xen reads the old producer back from the page; we use our own record of it, which
        // the peer cannot have changed. For an honest peer the two are equal.
        let old = self.req_prod;
        let new = self.req_prod_pvt;
        if old == new {
            return Notify::No;
        }
        // Release (Xen: wmb): the back end's Acquire load of req_prod that sees `new` also sees
        // every request slot written before this store.
        self.mem.store_u32(REQ_PROD, new, Release);
        self.req_prod = new;
        // Full fence (Xen: mb): our req_prod store is ordered before our req_event load. It pairs
        // with the fence in the back end's final_check_for_requests (store req_event; fence;
        // load req_prod): of two fences, the later one sees the other side's store, so either
        // the back end sees `new` and keeps working, or we see its req_event and notify it.
        self.mem.fence(SeqCst);
        let event = self.mem.load_u32(REQ_EVENT, Relaxed);
        Notify::from(new.wrapping_sub(event) < new.wrapping_sub(old))
    }

    /// Publishes every staged request without a notification decision (`RING_PUSH_REQUESTS`):
    /// for callers that notify unconditionally or poll.
    #[inline]
    pub fn publish_requests(&mut self) {
        if self.req_prod != self.req_prod_pvt {
            // Release (Xen: wmb): slots before index, as in push_requests.
            self.mem.store_u32(REQ_PROD, self.req_prod_pvt, Release);
            self.req_prod = self.req_prod_pvt;
        }
    }

    /// Stages one request and pushes it: the unbatched path.
    #[inline]
    pub fn send(&mut self, req: Req) -> Result<Notify, Full> {
        self.stage(req)?;
        Ok(self.push_requests())
    }

    /// Re-reads `rsp_prod` and validates it.
    #[inline]
    fn refresh(&mut self) -> Result<(), RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        // Acquire (Xen: rmb after reading rsp_prod): pairs with the back end's Release in
        // push_responses, so the response slots below `prod` are visible to our copies.
        let prod = self.mem.load_u32(RSP_PROD, Acquire);
        // An honest back end moves rsp_prod forward, and only up to what we published.
        let seen = self.rsp_prod_seen;
        if prod.wrapping_sub(seen) > self.req_prod.wrapping_sub(seen) {
            let e = RingError::BadResponseProducer {
                rsp_prod: prod,
                rsp_prod_seen: seen,
                req_prod: self.req_prod,
            };
            self.broken = Some(e);
            return Err(e);
        }
        self.rsp_prod_seen = prod;
        Ok(())
    }

    /// Responses published and not yet consumed (`RING_HAS_UNCONSUMED_RESPONSES`), after
    /// validating `rsp_prod`.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.rsp_prod_seen.wrapping_sub(self.rsp_cons))
    }

    /// Copies out the next response, if one is published. The peer's index is re-read only when
    /// the responses seen so far are used up.
    #[inline]
    pub fn next_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        if self.rsp_cons == self.rsp_prod_seen {
            self.refresh()?;
            if self.rsp_cons == self.rsp_prod_seen {
                return Ok(None);
            }
        }
        Ok(Some(self.take_response()))
    }

    /// Consumes every response published now, in order, handing each copy to `f`; returns how
    /// many. Bounded by the ring size, whatever the peer does.
    #[inline]
    pub fn poll_responses(&mut self, mut f: impl FnMut(Rsp)) -> Result<u32, RingError> {
        self.refresh()?;
        let n = self.rsp_prod_seen.wrapping_sub(self.rsp_cons);
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        for (pos, len) in slot_runs(self.rsp_cons, n, self.size) {
            let off = slot_offset(pos, self.size, slot);
            // `rsp_cons` counts each copy before `f` sees it (no double delivery if `f` panics).
            let mut cons = Advance::new(&mut self.rsp_cons);
            self.mem.read_each(off, slot, len as usize, |rsp| {
                cons.one();
                f(rsp);
            });
        }
        Ok(n)
    }

    /// Copies published responses into `buf`, in order, and returns how many: the batch form
    /// of [`next_response`](Self::next_response). `rsp_prod` is re-read only if the responses
    /// already seen cannot fill `buf`.
    #[inline]
    pub fn consume_responses_into(&mut self, buf: &mut [Rsp]) -> Result<usize, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let want = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        if self.rsp_prod_seen.wrapping_sub(self.rsp_cons) < want {
            self.refresh()?;
        }
        let n = self.rsp_prod_seen.wrapping_sub(self.rsp_cons).min(want);
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        read_slots(&self.mem, self.size, slot, self.rsp_cons, &mut buf[..n as usize]);
        self.rsp_cons = self.rsp_cons.wrapping_add(n);
        Ok(n as usize)
    }

    #[inline(always)]
    fn take_response(&mut self) -> Rsp {
        let off = slot_offset(self.rsp_cons, self.size, SharedRing::<Req, Rsp, M>::SLOT_SIZE);
        // The one read of this slot: the caller gets the copy.
        let rsp = self.mem.read::<Rsp>(off);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        rsp
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: call when out of responses, before sleeping. Returns
    /// `true` if responses arrived (keep polling); `false` means `rsp_event` now asks the back
    /// end to notify on the very next response, so sleeping until the event is safe.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.refresh()?;
        if self.rsp_cons != self.rsp_prod_seen {
            return Ok(true);
        }
        self.mem.store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1), Relaxed);
        // Full fence (Xen: mb): our rsp_event store is ordered before the rsp_prod re-read. It
        // pairs with the fence in the back end's push_responses (store rsp_prod; fence; load
        // rsp_event): either it sees our rsp_event and notifies, or we see its rsp_prod here.
        self.mem.fence(SeqCst);
        self.refresh()?;
        Ok(self.rsp_cons != self.rsp_prod_seen)
    }
}
