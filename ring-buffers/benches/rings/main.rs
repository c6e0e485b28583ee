//! Ring benchmarks: our Xen request/response ring against `rtrb` and crossbeam's `ArrayQueue`,
//! same item sizes (8 and 64 bytes), same capacity, same run, rounds interleaved so that noise
//! from a shared machine hits every contender alike. Prints a Markdown table (medians over the
//! rounds) for `docs/BENCHMARKS.md`.
//!
//! Run: `./scripts/bench-rings` (= `cargo bench -p ring-buffers --bench rings`).
//! Options (after `--`): `--quick` (fewer rounds), `--rounds N`.
//!
//! Our ring carries the item as the request and a zero-sized response: every item is consumed
//! by the back end and acknowledged through `rsp_prod`, which is what frees its slot (a Xen ring
//! has no other way to give a slot back). That ack is counted in our time.
//!
//! * single-thread: one thread pushes a batch of `BATCH` items, then pops them all.
//!   - batched: ours stages `BATCH` (`stage_iter`) and publishes once, consumes all with one
//!     index read (`consume_requests`), acks with one publish; "slices" copies from and to
//!     arrays (`stage_requests`, `consume_requests_into`); rtrb uses its chunk API.
//!   - unbatched: one item per call. Ours uses `send`/`respond`, i.e. Xen's
//!     `RING_PUSH_*_AND_CHECK_NOTIFY` per item (a full fence each); "publish-only" uses
//!     `RING_PUSH_*` per item (no notification decision).
//! * two-thread: a producer and a consumer thread spin on the queue; items per second.

#[cfg(not(loom))]
mod bench;

fn main() {
    #[cfg(not(loom))]
    bench::main();
}
