//! blkback against dom0's native disk path, in the same boots: dom0 runs its virtio-blk
//! benchmark (`devbench=1`: 16 MiB sequential write and read in 64 KiB requests, 2000 random
//! 4 KiB reads and writes), then a pv-guest domU runs the same through its blkfront and
//! dom0's blkback on the same virtio disk (`scenario=blk mode=bench`), one request at a time
//! and then four in flight (`-q4`). Prints the medians and the domU/dom0 ratio. Run as `cargo run --release -p tests --bin bench-blk [boots]`
//! after `./scripts/build`.

use std::collections::BTreeMap;

use tests::{Boot, guest_archive, median, pv_guest_file, scratch_disk};

fn main() {
    let boots: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let cfg = "name = 'bench'\nkernel = 'pv-guest'\nextra = 'scenario=blk mode=bench'\n\
               memory = 16\ndisk = [ 'phy:virtio0,xvda,w' ]\n";
    let archive =
        guest_archive("bench-blk", &[pv_guest_file(), ("bench.cfg", cfg.as_bytes().to_vec())]);
    let disk = scratch_disk("bench-blk", 64);
    let mut figures: BTreeMap<(String, &str), Vec<u64>> = BTreeMap::new();
    for i in 0..boots {
        let run = Boot::new(&format!("bench-blk-{i}"), "dom0", "devbench=1 create=bench")
            .module(archive.clone(), "")
            .disk(&disk)
            .timeout_secs(300)
            .run();
        if !run.has("RESULT blk: PASS bench done") {
            eprintln!("boot {i} did not finish; see target/test-logs/bench-blk-{i}.log");
        }
        for l in run.text().lines() {
            let who = if l.contains("] DEVBENCH ") { "domU" } else { "dom0" };
            let Some((name, rest)) = l.split("DEVBENCH ").nth(1).and_then(|r| r.split_once(": "))
            else {
                continue;
            };
            if let Some(v) = rest.split(' ').next().and_then(|v| v.parse().ok()) {
                figures.entry((name.to_string(), who)).or_default().push(v);
            }
        }
    }
    println!("medians over {boots} boots (QEMU TCG), dom0 native and a domU through blkback");
    println!("| figure | dom0 native | domU via blkback | domU / dom0 | domU runs |");
    println!("|---|---|---|---|---|");
    for name in [
        "disk-seq-write",
        "disk-seq-read",
        "disk-rand-read-4k",
        "disk-rand-write-4k",
        "disk-seq-write-q4",
        "disk-seq-read-q4",
        "disk-rand-read-4k-q4",
        "disk-rand-write-4k-q4",
    ] {
        // The native path has one request in flight: the `-q4` rows compare with it too.
        let base = name.trim_end_matches("-q4");
        let get = |n: &str, who| figures.get(&(n.to_string(), who)).map(|v| median(v));
        let runs = figures
            .get(&(name.to_string(), "domU"))
            .map_or(String::new(), |v| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
        match (get(base, "dom0"), get(name, "domU")) {
            (Some(a), Some(b)) if a > 0 => {
                println!("| {name} | {a} | {b} | {:.0} % | {runs} |", b as f64 * 100.0 / a as f64)
            }
            (a, b) => println!("| {name} | {a:?} | {b:?} | - | {runs} |"),
        }
    }
}
