//! [`BackRing`]: the back end of a request/response ring (requests in, responses out), with
//! Xen's `BACK_RING_*` private indices and the back-end macros as methods.
//!
//! This is the end a driver domain or the hypervisor runs against an untrusted front end, so it
//! trusts only its private indices: `req_prod` from the page is validated by Xen's overflow rule
//! before any slot is read, each request is copied out exactly once, and no loop runs longer
//! than the ring size.

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

/// The back end of a request/response ring: consumes requests, stages and pushes responses.
///
/// Private state, as Xen's `*_back_ring` plus hardening: `req_cons` (consumed),
/// `req_prod_seen` (last validated `req_prod`), `rsp_prod_pvt` (staged), `rsp_prod` (last
/// published: never re-read from the page), and a latched error.
///
/// Invariant, in wrapping u32 order:
/// `rsp_prod <= rsp_prod_pvt <= req_cons <= req_prod_seen <= rsp_prod_pvt + size`.
/// The last inequality is Xen's "unconsumed requests" bound: however `req_prod` lies, the back
/// end never reads a slot whose response it has not yet produced.
pub struct BackRing<'a, Req, Rsp, M: RingMemory = SharedMem<'a>> {
    mem: Mem<M>,
    size: u32,
    req_cons: u32,
    req_prod_seen: u32,
    rsp_prod_pvt: u32,
    rsp_prod: u32,
    broken: Option<RingError>,
    _items: Items<'a, Req, Rsp>,
}

impl<Req, Rsp, M: RingMemory> core::fmt::Debug for BackRing<'_, Req, Rsp, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackRing")
            .field("size", &self.size)
            .field("req_cons", &self.req_cons)
            .field("req_prod_seen", &self.req_prod_seen)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod", &self.rsp_prod)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<'a, Req: RingItem, Rsp: RingItem, M: RingMemory> BackRing<'a, Req, Rsp, M> {
    /// `BACK_RING_INIT`: attach at index 0 to a ring the front end initialised.
    pub fn new(ring: SharedRing<'a, Req, Rsp, M>) -> Self {
        Self::attach(ring, 0)
    }

    /// `BACK_RING_ATTACH`: attach with all private indices at `index`. A restarted back end
    /// passes the `rsp_prod` it published before (which it should have kept; re-reading it from
    /// the page trusts the front end, but all later checks are relative to it, so a lie there
    /// only yields errors or the front end's own garbage).
    pub fn attach(ring: SharedRing<'a, Req, Rsp, M>, index: u32) -> Self {
        let (mem, size) = ring.into_parts();
        BackRing {
            mem,
            size,
            req_cons: index,
            req_prod_seen: index,
            rsp_prod_pvt: index,
            rsp_prod: index,
            broken: None,
            _items: PhantomData,
        }
    }

    /// Number of slots (`RING_SIZE`).
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The error that broke this end, if any.
    pub fn error(&self) -> Option<RingError> {
        self.broken
    }

    /// Requests consumed whose response has not been staged yet.
    #[inline]
    pub fn pending_responses(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Re-reads `req_prod` and validates it.
    #[inline]
    fn refresh(&mut self) -> Result<(), RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        // Acquire (Xen: rmb after reading req_prod): pairs with the front end's Release in
        // push_requests, so the request slots below `prod` are visible to our copies.
        let prod = self.mem.load_u32(REQ_PROD, Acquire);
        // Forward from what we saw, and at most a ring's worth past our responses
        // (RING_REQUEST_PROD_OVERFLOW). Past that, the slots hold our own unread responses.
        let seen = self.req_prod_seen;
        let limit = self.rsp_prod_pvt.wrapping_add(self.size);
        if prod.wrapping_sub(seen) > limit.wrapping_sub(seen) {
            let e = RingError::BadRequestProducer {
                req_prod: prod,
                req_prod_seen: seen,
                rsp_prod_pvt: self.rsp_prod_pvt,
            };
            self.broken = Some(e);
            return Err(e);
        }
        self.req_prod_seen = prod;
        Ok(())
    }

    /// Requests published and not yet consumed (`RING_HAS_UNCONSUMED_REQUESTS`, with Xen's
    /// bound), after validating `req_prod`.
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.req_prod_seen.wrapping_sub(self.req_cons))
    }

    /// Copies out the next request, if one is published (`RING_COPY_REQUEST` + `req_cons++`).
    /// The peer's index is re-read only when the requests seen so far are used up.
    #[inline]
    pub fn next_request(&mut self) -> Result<Option<Req>, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        if self.req_cons == self.req_prod_seen {
            self.refresh()?;
            if self.req_cons == self.req_prod_seen {
                return Ok(None);
            }
        }
        Ok(Some(self.take_request()))
    }

    /// Consumes up to `max` published requests, in order, handing each copy to `f`; returns how
    /// many. `max` bounds the work done per event; the ring size bounds it anyway. `req_prod`
    /// is re-read only if the requests already seen are fewer than `max`.
    #[inline]
    pub fn consume_requests(&mut self, max: u32, mut f: impl FnMut(Req)) -> Result<u32, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        if self.req_prod_seen.wrapping_sub(self.req_cons) < max {
            self.refresh()?;
        }
        let n = self.req_prod_seen.wrapping_sub(self.req_cons).min(max);
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        for (pos, len) in slot_runs(self.req_cons, n, self.size) {
            let off = slot_offset(pos, self.size, slot);
            // `req_cons` counts each copy before `f` sees it, so a panic in `f` cannot make a
            // request be delivered twice.
            let mut cons = Advance::new(&mut self.req_cons);
            self.mem.read_each(off, slot, len as usize, |req| {
                cons.one();
                f(req);
            });
        }
        Ok(n)
    }

    /// Copies published requests into `buf`, in order, and returns how many: the batch form of
    /// [`next_request`](Self::next_request), with one bounds check and at most two contiguous
    /// copies. `req_prod` is re-read only if the requests already seen cannot fill `buf`.
    #[inline]
    pub fn consume_requests_into(&mut self, buf: &mut [Req]) -> Result<usize, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let want = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        if self.req_prod_seen.wrapping_sub(self.req_cons) < want {
            self.refresh()?;
        }
        let n = self.req_prod_seen.wrapping_sub(self.req_cons).min(want);
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        read_slots(&self.mem, self.size, slot, self.req_cons, &mut buf[..n as usize]);
        self.req_cons = self.req_cons.wrapping_add(n);
        Ok(n as usize)
    }

    #[inline(always)]
    fn take_request(&mut self) -> Req {
        let off = slot_offset(self.req_cons, self.size, SharedRing::<Req, Rsp, M>::SLOT_SIZE);
        // The one read of this slot: validation and use happen on the returned copy.
        let req = self.mem.read::<Req>(off);
        self.req_cons = self.req_cons.wrapping_add(1);
        req
    }

    /// Copies `rsp` into the slot of the oldest consumed, unanswered request
    /// (`RING_GET_RESPONSE` + `rsp_prod_pvt++`). [`Full`] if every consumed request already has
    /// its response: writing one more would overwrite a request not yet read.
    #[inline]
    pub fn stage_response(&mut self, rsp: Rsp) -> Result<(), Full> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(Full);
        }
        let off = slot_offset(self.rsp_prod_pvt, self.size, SharedRing::<Req, Rsp, M>::SLOT_SIZE);
        self.mem.write(off, &rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Stages responses from `rsps`, in order, for as many consumed requests as are waiting;
    /// returns how many: the batch form of [`stage_response`](Self::stage_response).
    #[inline]
    pub fn stage_responses(&mut self, rsps: &[Rsp]) -> usize {
        let n = self.pending_responses().min(u32::try_from(rsps.len()).unwrap_or(u32::MAX));
        let slot = SharedRing::<Req, Rsp, M>::SLOT_SIZE;
        write_slots(&self.mem, self.size, slot, self.rsp_prod_pvt, &rsps[..n as usize]);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(n);
        n as usize
    }

    /// Publishes every staged response and says whether the front end must be notified
    /// (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    #[inline]
    pub fn push_responses(&mut self) -> Notify {
        // Our own record of the old producer, not the page's (which the peer may have changed).
        let old = self.rsp_prod;
        let new = self.rsp_prod_pvt;
        if old == new {
            return Notify::No;
        }
        // Release (Xen: wmb): the front end's Acquire load of rsp_prod that sees `new` also sees
        // every response slot written before this store. It also orders our earlier copies out
        // of those slots (the requests) before the front end may reuse them.
        self.mem.store_u32(RSP_PROD, new, Release);
        self.rsp_prod = new;
        // Full fence (Xen: mb): rsp_prod store before rsp_event load; pairs with the fence in
        // the front end's final_check_for_responses. Either it sees `new`, or we see its
        // rsp_event and notify: no lost wake-up.
        self.mem.fence(SeqCst);
        let event = self.mem.load_u32(RSP_EVENT, Relaxed);
        Notify::from(new.wrapping_sub(event) < new.wrapping_sub(old))
    }

    /// Publishes every staged response without a notification decision (`RING_PUSH_RESPONSES`).
    #[inline]
    pub fn publish_responses(&mut self) {
        if self.rsp_prod != self.rsp_prod_pvt {
            // Release (Xen: wmb): as in push_responses.
            self.mem.store_u32(RSP_PROD, self.rsp_prod_pvt, Release);
            self.rsp_prod = self.rsp_prod_pvt;
        }
    }

    /// Stages one response and pushes it: the unbatched path.
    #[inline]
    pub fn respond(&mut self, rsp: Rsp) -> Result<Notify, Full> {
        self.stage_response(rsp)?;
        Ok(self.push_responses())
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: call when out of requests, before sleeping. Returns
    /// `true` if requests arrived (keep working); `false` means `req_event` now asks the front
    /// end to notify on the very next request, so sleeping until the event is safe.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        self.refresh()?;
        if self.req_cons != self.req_prod_seen {
            return Ok(true);
        }
        self.mem.store_u32(REQ_EVENT, self.req_cons.wrapping_add(1), Relaxed);
        // Full fence (Xen: mb): req_event store before the req_prod re-read; pairs with the
        // fence in the front end's push_requests. Either it sees our req_event and notifies, or
        // we see its req_prod here.
        self.mem.fence(SeqCst);
        self.refresh()?;
        Ok(self.req_cons != self.req_prod_seen)
    }
}
