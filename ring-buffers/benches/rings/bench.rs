//! The contenders, the timing loop and the report (not built under `--cfg loom`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use ring_buffers::{BackRing, FrontRing, Page, SharedMem, SharedRing};

/// Items per batch (and per push in the batched two-thread runs).
const BATCH: usize = 32;

type Front<'a, const N: usize> = FrontRing<'a, [u64; N], ()>;
type Back<'a, const N: usize> = BackRing<'a, [u64; N], ()>;

#[inline(always)]
fn item<const N: usize>(i: u64) -> [u64; N] {
    [i; N]
}

/// What every consumer does with an item: read all of it (a checksum of every word), so that
/// no contender gets away with touching only the first word of a 64-byte item.
///
/// The item's words are summed on their own and then added to the running sum: one add per item
/// on the loop-carried chain. Folding every word straight into `sum` makes that chain one add
/// per word, and whether the compiler reassociates it depends on the shape of the consumer's
/// loop (it does for values handed to a closure, not for a loop over a slice of items), so a
/// 64-byte consumer reading from a slice measured the add latency (8 cycles per item) rather
/// than the queue.
#[inline(always)]
fn eat<const N: usize>(sum: u64, r: &[u64; N]) -> u64 {
    sum.wrapping_add(r.iter().fold(0u64, |s, w| s.wrapping_add(*w)))
}

// ---------------------------------------------------------------------------------------------
// Single thread: push a batch, pop it. Each function runs `batches` batches and returns a
// checksum so that nothing is optimised away.

#[inline(never)]
fn st_ours_batched<const N: usize>(f: &mut Front<N>, b: &mut Back<N>, batches: usize) -> u64 {
    let mut sum = 0u64;
    let acks = [(); BATCH];
    for k in 0..batches as u64 {
        assert_eq!(f.stage_iter((k..k + BATCH as u64).map(item)), BATCH);
        let _ = f.push_requests();
        b.consume_requests(u32::MAX, |r: [u64; N]| sum = eat(sum, &r)).unwrap();
        assert_eq!(b.stage_responses(&acks), BATCH);
        let _ = b.push_responses();
        f.poll_responses(drop).unwrap();
    }
    sum
}

#[inline(never)]
fn st_ours_slices<const N: usize>(f: &mut Front<N>, b: &mut Back<N>, batches: usize) -> u64 {
    let mut sum = 0u64;
    let mut buf = [[0u64; N]; BATCH];
    let mut items = [[0u64; N]; BATCH];
    let acks = [(); BATCH];
    for k in 0..batches as u64 {
        // Built in place: `array::from_fn` builds a temporary and copies it (2 KiB per batch at
        // 64 bytes), which is the harness's cost, not the ring's.
        for (i, it) in items.iter_mut().enumerate() {
            *it = item(k + i as u64);
        }
        assert_eq!(f.stage_requests(&items), BATCH);
        let _ = f.push_requests();
        let n = b.consume_requests_into(&mut buf).unwrap();
        for r in &buf[..n] {
            sum = eat(sum, r);
        }
        assert_eq!(b.stage_responses(&acks[..n]), n);
        let _ = b.push_responses();
        f.poll_responses(drop).unwrap();
    }
    sum
}

#[inline(never)]
fn st_ours_unbatched<const N: usize>(f: &mut Front<N>, b: &mut Back<N>, batches: usize) -> u64 {
    let mut sum = 0u64;
    for k in 0..batches as u64 {
        for i in 0..BATCH as u64 {
            let _ = f.send(item(k + i)).unwrap();
        }
        for _ in 0..BATCH {
            let r: [u64; N] = b.next_request().unwrap().unwrap();
            sum = eat(sum, &r);
            let _ = b.respond(()).unwrap();
            f.next_response().unwrap().unwrap();
        }
    }
    sum
}

#[inline(never)]
fn st_ours_publish_only<const N: usize>(f: &mut Front<N>, b: &mut Back<N>, batches: usize) -> u64 {
    let mut sum = 0u64;
    for k in 0..batches as u64 {
        for i in 0..BATCH as u64 {
            f.stage(item(k + i)).unwrap();
            f.publish_requests();
        }
        for _ in 0..BATCH {
            let r: [u64; N] = b.next_request().unwrap().unwrap();
            sum = eat(sum, &r);
            b.stage_response(()).unwrap();
            b.publish_responses();
            f.next_response().unwrap().unwrap();
        }
    }
    sum
}

#[inline(never)]
fn st_rtrb_batched<const N: usize>(
    p: &mut rtrb::Producer<[u64; N]>,
    c: &mut rtrb::Consumer<[u64; N]>,
    batches: usize,
) -> u64 {
    let mut sum = 0u64;
    for k in 0..batches as u64 {
        let chunk = p.write_chunk_uninit(BATCH).unwrap();
        chunk.fill_from_iter((0..BATCH as u64).map(|i| item(k + i)));
        let chunk = c.read_chunk(BATCH).unwrap();
        let (a, b) = chunk.as_slices();
        for r in a.iter().chain(b) {
            sum = eat(sum, r);
        }
        chunk.commit_all();
    }
    sum
}

#[inline(never)]
fn st_rtrb_unbatched<const N: usize>(
    p: &mut rtrb::Producer<[u64; N]>,
    c: &mut rtrb::Consumer<[u64; N]>,
    batches: usize,
) -> u64 {
    let mut sum = 0u64;
    for k in 0..batches as u64 {
        for i in 0..BATCH as u64 {
            p.push(item(k + i)).unwrap();
        }
        for _ in 0..BATCH {
            sum = eat(sum, &c.pop().unwrap());
        }
    }
    sum
}

#[inline(never)]
fn st_arrayqueue<const N: usize>(q: &ArrayQueue<[u64; N]>, batches: usize) -> u64 {
    let mut sum = 0u64;
    for k in 0..batches as u64 {
        for i in 0..BATCH as u64 {
            q.push(item(k + i)).unwrap();
        }
        for _ in 0..BATCH {
            sum = eat(sum, &q.pop().unwrap());
        }
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Two threads: move `total` items from a producer thread to a consumer thread; returns the
// consumer's checksum (which must equal the sum of 0..total).

fn tt_ours<const N: usize>(f: &mut Front<N>, b: &mut Back<N>, total: u64, batched: bool) -> u64 {
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < total {
                let n = if batched {
                    let n = b.consume_requests(u32::MAX, |r: [u64; N]| sum = eat(sum, &r));
                    let n = n.unwrap() as usize;
                    let mut left = n;
                    while left > 0 {
                        left -= b.stage_responses(&[(); BATCH][..left.min(BATCH)]);
                    }
                    let _ = b.push_responses();
                    n as u64
                } else if let Some(r) = b.next_request().unwrap() {
                    sum = eat(sum, &r);
                    let _ = b.respond(()).unwrap();
                    1
                } else {
                    0
                };
                if n == 0 {
                    std::hint::spin_loop();
                }
                got += n;
            }
            sum
        });
        // The producer collects acknowledgements only when the ring is full, the way a front
        // end driven by interrupts would (and the way rtrb re-reads its peer's index lazily).
        let mut sent = 0u64;
        while sent < total {
            if batched {
                let k = f.stage_iter((sent..total).take(BATCH).map(item));
                sent += k as u64;
                let _ = f.push_requests();
                if k == 0 && f.poll_responses(drop).unwrap() == 0 {
                    std::hint::spin_loop();
                }
            } else {
                match f.send(item(sent)) {
                    Ok(_) => sent += 1,
                    Err(_) => {
                        if f.poll_responses(drop).unwrap() == 0 {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        }
        while f.outstanding() > 0 {
            f.poll_responses(drop).unwrap();
        }
        consumer.join().unwrap()
    })
}

fn tt_rtrb<const N: usize>(
    p: &mut rtrb::Producer<[u64; N]>,
    c: &mut rtrb::Consumer<[u64; N]>,
    total: u64,
    batched: bool,
) -> u64 {
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < total {
                if batched {
                    let n = c.slots();
                    if n == 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                    let chunk = c.read_chunk(n).unwrap();
                    let (a, b) = chunk.as_slices();
                    for r in a.iter().chain(b) {
                        sum = eat(sum, r);
                    }
                    chunk.commit_all();
                    got += n as u64;
                } else if let Ok(r) = c.pop() {
                    sum = eat(sum, &r);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            sum
        });
        let mut sent = 0u64;
        while sent < total {
            if batched {
                let n = p.slots().min(BATCH).min((total - sent) as usize);
                if n == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = p.write_chunk_uninit(n).unwrap();
                chunk.fill_from_iter((sent..sent + n as u64).map(item));
                sent += n as u64;
            } else if p.push(item(sent)).is_ok() {
                sent += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        consumer.join().unwrap()
    })
}

fn tt_arrayqueue<const N: usize>(q: &ArrayQueue<[u64; N]>, total: u64) -> u64 {
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < total {
                if let Some(r) = q.pop() {
                    sum = eat(sum, &r);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            sum
        });
        let mut sent = 0u64;
        while sent < total {
            if q.push(item(sent)).is_ok() {
                sent += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        consumer.join().unwrap()
    })
}

// ---------------------------------------------------------------------------------------------

/// One contender: a name and a closure that runs `units` of work, returns (nanoseconds, items).
struct Case<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> (f64, f64) + 'a>,
    samples: Vec<f64>, // ns per item
}

fn case<'a>(name: &'static str, run: impl FnMut() -> (f64, f64) + 'a) -> Case<'a> {
    Case { name, run: Box::new(run), samples: Vec::new() }
}

/// A timed run of `body` on one contender's two ends, borrowed for the run.
fn on<'a, A, B>(
    ends: &'a std::cell::RefCell<(A, B)>,
    items: u64,
    mut body: impl FnMut(&mut A, &mut B) -> u64 + 'a,
) -> impl FnMut() -> (f64, f64) + 'a {
    move || {
        let mut g = ends.borrow_mut();
        let (a, b) = &mut *g;
        timed(items, || body(a, b))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn timed(items: u64, f: impl FnOnce() -> u64) -> (f64, f64) {
    let t = Instant::now();
    let sum = f();
    let ns = t.elapsed().as_nanos() as f64;
    black_box(sum);
    (ns, items as f64)
}

fn expect_sum(total: u64, words: u64) -> u64 {
    (total * (total - 1) / 2).wrapping_mul(words)
}

struct Opts {
    rounds: usize,
    st_batches: usize,
    tt_items: u64,
}

/// Builds the contenders for item size `8 * N` bytes. Capacity everywhere: our ring's slot
/// count for one page (8-byte items: 256 slots) or two pages (64-byte items: 64 slots).
fn run_size<const N: usize>(opts: &Opts, out: &mut Vec<Row>) {
    let pages_needed = if N == 1 { 1 } else { 2 };
    let mut pages: Vec<Page> = (0..pages_needed).map(|_| Page::new()).collect();
    let mut ring = SharedRing::<[u64; N], ()>::new(SharedMem::new(&mut pages)).unwrap();
    ring.init();
    let cap = ring.size() as usize;
    let (mut f, mut b) = ring.split();
    let (mut rp, mut rc) = rtrb::RingBuffer::<[u64; N]>::new(cap);
    let q = ArrayQueue::<[u64; N]>::new(cap);
    let (batches, total) = (opts.st_batches, opts.tt_items);
    let st_items = (batches * BATCH) as u64;
    // Each closure needs its own access to the shared contenders; run them one at a time
    // through RefCells.
    let ours = std::cell::RefCell::new((&mut f, &mut b));
    let rt = std::cell::RefCell::new((&mut rp, &mut rc));
    let q = &q;
    let mut st = vec![
        case("ours, batched", on(&ours, st_items, |f, b| st_ours_batched::<N>(f, b, batches))),
        case(
            "ours, batched slices",
            on(&ours, st_items, |f, b| st_ours_slices::<N>(f, b, batches)),
        ),
        case(
            "ours, unbatched (push + notify check per item)",
            on(&ours, st_items, |f, b| st_ours_unbatched::<N>(f, b, batches)),
        ),
        case(
            "ours, unbatched publish-only (no notify check)",
            on(&ours, st_items, |f, b| st_ours_publish_only::<N>(f, b, batches)),
        ),
        case(
            "rtrb, batched (chunks)",
            on(&rt, st_items, |p, c| st_rtrb_batched::<N>(p, c, batches)),
        ),
        case(
            "rtrb, unbatched (push/pop)",
            on(&rt, st_items, |p, c| st_rtrb_unbatched::<N>(p, c, batches)),
        ),
        case("crossbeam ArrayQueue (push/pop)", move || {
            timed(st_items, || st_arrayqueue::<N>(q, batches))
        }),
    ];
    let mut tt = vec![
        case("ours, batched", on(&ours, total, |f, b| tt_ours::<N>(f, b, total, true))),
        case(
            "ours, unbatched (push + notify check per item)",
            on(&ours, total, |f, b| tt_ours::<N>(f, b, total, false)),
        ),
        case("rtrb, batched (chunks)", on(&rt, total, |p, c| tt_rtrb::<N>(p, c, total, true))),
        case("rtrb, unbatched (push/pop)", on(&rt, total, |p, c| tt_rtrb::<N>(p, c, total, false))),
        case("crossbeam ArrayQueue (push/pop)", move || {
            timed(total, || tt_arrayqueue::<N>(q, total))
        }),
    ];

    // Correctness check once, outside the timing: every contender delivers every item.
    {
        let mut g = ours.borrow_mut();
        let (f, b) = &mut *g;
        for batched in [true, false] {
            assert_eq!(tt_ours::<N>(f, b, 10_000, batched), expect_sum(10_000, N as u64));
        }
    }

    // Warm up, then interleave: round r runs every case once.
    for c in st.iter_mut().chain(tt.iter_mut()) {
        let _ = (c.run)();
    }
    for _ in 0..opts.rounds {
        for c in st.iter_mut().chain(tt.iter_mut()) {
            let (ns, items) = (c.run)();
            c.samples.push(ns / items);
        }
    }
    for (mode, cases) in [("single-thread", &mut st), ("two-thread", &mut tt)] {
        for c in cases.iter_mut() {
            let med = median(&mut c.samples);
            let min = c.samples[0];
            out.push(Row { size: 8 * N, mode, name: c.name, median_ns: med, min_ns: min });
        }
    }
}

struct Row {
    size: usize,
    mode: &'static str,
    name: &'static str,
    median_ns: f64,
    min_ns: f64,
}

pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5 } else { 21 });
    let opts = Opts {
        rounds,
        st_batches: if quick { 20_000 } else { 100_000 },
        tt_items: if quick { 1 << 19 } else { 1 << 21 },
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    run_size::<1>(&opts, &mut rows);
    run_size::<8>(&opts, &mut rows);
    print_table(&rows, &opts, started.elapsed());
}

fn print_table(rows: &[Row], opts: &Opts, took: Duration) {
    println!(
        "\nring benchmarks: {} rounds, median (min) ns per item; single-thread: {} batches of {BATCH}; \
         two-thread: {} items; took {:.0?}\n",
        opts.rounds, opts.st_batches, opts.tt_items, took
    );
    println!("| item | mode | contender | ns/item median | (min) | Mitems/s | vs rtrb best |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for r in rows {
        let rtrb_best = rows
            .iter()
            .filter(|o| o.size == r.size && o.mode == r.mode && o.name.starts_with("rtrb"))
            .map(|o| o.median_ns)
            .fold(f64::INFINITY, f64::min);
        println!(
            "| {} B | {} | {} | {:.2} | ({:.2}) | {:.1} | {:.2}x |",
            r.size,
            r.mode,
            r.name,
            r.median_ns,
            r.min_ns,
            1e3 / r.median_ns,
            rtrb_best / r.median_ns
        );
    }
    println!("\n'vs rtrb best' > 1 means faster than rtrb's faster mode in the same run.\n");
    println!("Summary (medians):");
    for size in [8, 64] {
        for mode in ["single-thread", "two-thread"] {
            let best = |prefix: &str| {
                rows.iter()
                    .filter(|r| r.size == size && r.mode == mode && r.name.starts_with(prefix))
                    .min_by(|a, b| a.median_ns.partial_cmp(&b.median_ns).unwrap())
            };
            let (Some(ob), Some(ou), Some(rb)) =
                (best("ours, batched"), best("ours, unbatched (push"), best("rtrb"))
            else {
                continue;
            };
            println!(
                "  {size:>2} B {mode:<13}: ours best batched {:.2} ns ({}), rtrb best {:.2} ns \
                 ({}): ours/rtrb speed {:.2}x; ours batched vs unbatched {:.1}x",
                ob.median_ns,
                ob.name,
                rb.median_ns,
                rb.name,
                rb.median_ns / ob.median_ns,
                ou.median_ns / ob.median_ns
            );
        }
    }
}
