//! Measuring from inside a kernel: the median over batches of a closure's cost in TSC cycles,
//! and the `BENCH <name>: median <cycles> cycles (<ns> ns)` line the benchmark tools
//! (`tests/src/bin/bench-*.rs`) parse. The pv-guest kernel's self-tests and scenarios and
//! dom0's own xenstored benchmark all report through it, so their figures compare directly.

use crate::println;

/// Median over `batches` of the mean cost of `iters` runs of `f`, in TSC cycles.
pub fn measure(batches: usize, iters: u64, mut f: impl FnMut()) -> u64 {
    let mut per = alloc::vec::Vec::with_capacity(batches);
    for _ in 0..batches {
        let t0 = crate::arch::rdtsc();
        for _ in 0..iters {
            f();
        }
        per.push((crate::arch::rdtsc() - t0) / iters);
    }
    per.sort_unstable();
    per[per.len() / 2]
}

/// Prints one benchmark figure.
pub fn bench_line(name: &str, cycles: u64) {
    println!("BENCH {name}: median {cycles} cycles ({} ns)", crate::time::cycles_to_ns(cycles));
}
