//! blkback against dom0's native disk path, in the same boots: dom0 runs its virtio-blk
//! benchmark (`devbench=1`: 16 MiB sequential write and read in 64 KiB requests, 2000 random
//! 4 KiB reads and writes), then a pv-guest domU runs the same through its blkfront and
//! dom0's blkback on the same virtio disk (`scenario=blk mode=bench`), one request at a time
//! and then four in flight (`-q4`). Each boot is paired with one whose blkback maps the
//! guest's grants instead of copying them (`blkback_grants=map`). Prints the medians, the
//! domU/dom0 ratio and the map/copy ratio. Run as
//! `cargo run --release -p tests --bin bench-blk [boots]` after `./scripts/build`.

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
    // domU / dom0 within each boot (the baseline measured seconds before, on the same host
    // load), in per cent.
    let mut ratios: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // map / copy for the domU's figures, boot pairs back to back, in per cent.
    let mut map_ratios: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..boots {
        let mut domu_by_path: BTreeMap<(&str, String), u64> = BTreeMap::new();
        for path in ["copy", "map"] {
            let run = Boot::new(
                &format!("bench-blk-{path}-{i}"),
                "dom0",
                &format!("devbench=1 create=bench blkback_grants={path}"),
            )
            .module(archive.clone(), "")
            .disk(&disk)
            .timeout_secs(300)
            .run();
            if !run.has("RESULT blk: PASS bench done") {
                eprintln!("boot {i} did not finish; see target/test-logs/bench-blk-{path}-{i}.log");
            }
            let mut this: BTreeMap<(String, &str), u64> = BTreeMap::new();
            for l in run.text().lines() {
                let who = match (l.contains("] DEVBENCH "), path) {
                    (false, _) => "dom0",
                    (true, "copy") => "domU",
                    (true, _) => "domU-map",
                };
                let Some((name, rest)) =
                    l.split("DEVBENCH ").nth(1).and_then(|r| r.split_once(": "))
                else {
                    continue;
                };
                if let Some(v) = rest.split(' ').next().and_then(|v| v.parse().ok()) {
                    figures.entry((name.to_string(), who)).or_default().push(v);
                    this.insert((name.to_string(), who), v);
                    if who != "dom0" {
                        domu_by_path.insert((path, name.to_string()), v);
                    }
                }
            }
            for ((name, who), v) in &this {
                let base = name.trim_end_matches("-q4").to_string();
                if *who == "domU"
                    && let Some(&b) = this.get(&(base, "dom0"))
                    && b > 0
                {
                    ratios.entry(name.clone()).or_default().push(v * 100 / b);
                }
            }
        }
        for ((path, name), v) in &domu_by_path {
            if *path == "map"
                && let Some(&c) = domu_by_path.get(&("copy", name.clone()))
                && c > 0
            {
                map_ratios.entry(name.clone()).or_default().push(v * 100 / c);
            }
        }
    }
    println!("medians over {boots} boots (QEMU TCG), dom0 native and a domU through blkback");
    println!(
        "| figure | dom0 native | domU via blkback | domU / dom0 (medians) | domU / dom0 per boot (median, runs) |"
    );
    println!("|---|---|---|---|---|");
    let names = [
        "disk-seq-write",
        "disk-seq-read",
        "disk-rand-read-4k",
        "disk-rand-write-4k",
        "disk-seq-write-q4",
        "disk-seq-read-q4",
        "disk-rand-read-4k-q4",
        "disk-rand-write-4k-q4",
    ];
    for name in names {
        // The native path has one request in flight: the `-q4` rows compare with it too.
        let base = name.trim_end_matches("-q4");
        let get = |n: &str, who| figures.get(&(n.to_string(), who)).map(|v| median(v));
        let runs = ratios.get(name).map_or(String::new(), |v| {
            let all = v.iter().map(|r| format!("{r} %")).collect::<Vec<_>>().join(", ");
            format!("**{} %** ({all})", median(v))
        });
        match (get(base, "dom0"), get(name, "domU")) {
            (Some(a), Some(b)) if a > 0 => {
                println!("| {name} | {a} | {b} | {:.0} % | {runs} |", b as f64 * 100.0 / a as f64)
            }
            (a, b) => println!("| {name} | {a:?} | {b:?} | - | {runs} |"),
        }
    }
    println!();
    println!(
        "the domU's figures with blkback copying (GNTTABOP_copy) and mapping its grants, boots paired"
    );
    println!("| figure | grant copy | grant map | map / copy per pair (median, runs) |");
    println!("|---|---|---|---|");
    for name in names {
        let get = |who| {
            figures.get(&(name.to_string(), who)).map_or("-".to_string(), |v| median(v).to_string())
        };
        let runs = map_ratios.get(name).map_or(String::new(), |v| {
            let all = v.iter().map(|r| format!("{r} %")).collect::<Vec<_>>().join(", ");
            format!("**{} %** ({all})", median(v))
        });
        println!("| {name} | {} | {} | {runs} |", get("domU"), get("domU-map"));
    }
}
