//! Boot-time benchmark: seconds from QEMU's start to dom0's first line, ours against real Xen
//! 4.17 (`../shared/tools/xen-reference`), same dom0 image, same emulator (TCG), same memory
//! (1 GiB, dom0_mem=256M, as the reference tool uses). Prints medians of N runs each and the
//! ratio; run as `cargo run --release -p tests --bin bench-boot [N]`.

use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{Boot, image, root};

const MARKER: &str = "dom0: xen-core dom0 starting";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ours(n: usize, hv_args: &str) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let mut b =
                Boot::new(&format!("bench-boot-{i}"), "dom0", "").hv_args(hv_args).until(MARKER);
            b.memory_mib = 1024;
            b.timeout = Duration::from_secs(60);
            let run = b.run();
            run.time_of(MARKER).unwrap_or_else(|| panic!("no dom0 line:\n{}", run.text()))
        })
        .collect()
}

fn xen(n: usize) -> Option<Vec<f64>> {
    let tool = root().join("../shared/tools/xen-reference");
    if !tool.exists() {
        eprintln!("{} not found: skipping real Xen", tool.display());
        return None;
    }
    let mut times = Vec::new();
    for _ in 0..n {
        let out = Command::new(&tool)
            .args(["--timeout", "120", "--stamp", "--until", MARKER])
            .arg(image("dom0"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let t =
            text.lines().find(|l| l.contains(MARKER))?.split_whitespace().next()?.parse().ok()?;
        times.push(t);
    }
    Some(times)
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let ours_same = ours(n, "loglvl=info dom0_mem=256M");
    let ours_default = ours(n, "loglvl=info");
    println!("runs per configuration: {n} (QEMU 7.2 TCG, -m 1024)");
    println!("xen-core, dom0_mem=256M: median {:.3} s  {:?}", median(ours_same.clone()), ours_same);
    println!(
        "xen-core, default dom0_mem: median {:.3} s  {:?}",
        median(ours_default.clone()),
        ours_default
    );
    if let Some(x) = xen(n) {
        let m = median(x.clone());
        println!("Xen 4.17, dom0_mem=256M: median {m:.3} s  {x:?}");
        println!("ratio Xen / xen-core (same dom0_mem): {:.1}x", m / median(ours_same));
    }
}
