//! Both ends of one ring in one process: what tests, benchmarks and loom models use, and
//! nothing a real front or back end needs (each makes its own end from the shared page). Kept
//! apart from `sring` so the ring's memory view knows nothing of the ends made from it.

#![forbid(unsafe_code)]

use crate::back::BackRing;
use crate::front::FrontRing;
use crate::memory::RingMemory;
use crate::sring::{RingItem, SharedRing};

impl<'a, Req: RingItem, Rsp: RingItem, M: RingMemory> SharedRing<'a, Req, Rsp, M> {
    /// Both ends of an in-process ring at index 0 (`FRONT_RING_INIT` + `BACK_RING_INIT`).
    /// Call [`init`](Self::init) first.
    pub fn split(self) -> (FrontRing<'a, Req, Rsp, M>, BackRing<'a, Req, Rsp, M>) {
        self.split_at(0)
    }

    /// Both ends of an in-process ring attached at `index` (see [`init_at`](Self::init_at)).
    pub fn split_at(self, index: u32) -> (FrontRing<'a, Req, Rsp, M>, BackRing<'a, Req, Rsp, M>) {
        let back_half = self.duplicate();
        (FrontRing::attach(self, index), BackRing::attach(back_half, index))
    }
}
