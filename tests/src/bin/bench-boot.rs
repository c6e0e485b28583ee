//! Boot-time benchmark: seconds from QEMU's start to dom0's first line, ours against real Xen
//! 4.17 (`../shared/tools/xen-reference`), same dom0 image, same emulator (TCG), same memory
//! (1 GiB, dom0_mem=256M, as the reference tool uses). Prints medians of N runs each and the
//! ratio; run as `cargo run --release -p tests --bin bench-boot [N]`.

use tests::{Boot, image, median, xen_reference};

const MARKER: &str = "dom0: xen-core dom0 starting";

fn ours(n: usize, hv_args: &str) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let mut b = Boot::new(&format!("bench-boot-{i}"), "dom0", "")
                .hv_args(hv_args)
                .until(MARKER)
                .timeout_secs(60);
            b.memory_mib = 1024;
            let run = b.run();
            run.time_of(MARKER).unwrap_or_else(|| panic!("no dom0 line:\n{}", run.text()))
        })
        .collect()
}

fn xen(n: usize) -> Option<Vec<f64>> {
    let dom0 = image("dom0");
    let mut times = Vec::new();
    for _ in 0..n {
        let text =
            xen_reference(&["--timeout", "120", "--stamp", "--until", MARKER, dom0.to_str()?])?;
        let t =
            text.lines().find(|l| l.contains(MARKER))?.split_whitespace().next()?.parse().ok()?;
        times.push(t);
    }
    Some(times)
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    // 256 MiB is also xen-core's default dom0_mem; it is spelled out so the two hypervisors
    // are compared on the same size whatever the default becomes.
    let ours_same = ours(n, "loglvl=info dom0_mem=256M");
    println!("runs per configuration: {n} (QEMU 7.2 TCG, -m 1024)");
    println!("xen-core, dom0_mem=256M: median {:.3} s  {:?}", median(&ours_same), ours_same);
    if let Some(x) = xen(n) {
        let m = median(&x);
        println!("Xen 4.17, dom0_mem=256M: median {m:.3} s  {x:?}");
        println!("ratio Xen / xen-core (same dom0_mem): {:.1}x", m / median(&ours_same));
    }
}
