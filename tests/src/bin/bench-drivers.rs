//! Split-driver benchmarks, ours and real Xen 4.17's, in one run under the same TCG: grant
//! map+unmap against grant copy of a 4 KiB page (dom0 maps a page it granted itself: the same
//! dom0 image on both), then the domU figures (ours only: the reference tool boots dom0 alone):
//! the same grant operations on another domU's page, a XenStore read over the ring against
//! dom0's in-process read, and console throughput through the PV console ring against
//! `console_io`. Run as `cargo run --release -p tests --bin bench-drivers [boots]` after
//! `./scripts/build`.

use std::collections::BTreeMap;

use tests::{Boot, image, median, parse_bench, xen_reference};

type Figures = BTreeMap<String, Vec<u64>>;

/// `BENCH` lines (ns kept) and `RATE name: N bytes/s` lines; a line a domU printed (dom0's
/// console back end prefixes it `[name]`) is filed under `domU/`.
fn parse(text: &str, into: &mut Figures) {
    for l in text.lines() {
        let who = if l.contains("] BENCH ") || l.contains("] RATE ") { "domU" } else { "dom0" };
        let figure = parse_bench(l).map(|(name, _, ns)| (name, ns)).or_else(|| {
            let (name, rest) = l.split("RATE ").nth(1)?.split_once(": ")?;
            Some((name, rest.split(' ').next()?.parse().ok()?))
        });
        if let Some((name, v)) = figure {
            into.entry(format!("{who}/{name}")).or_default().push(v);
        }
    }
}

fn ours(boots: usize) -> Figures {
    let mut out = BTreeMap::new();
    for i in 0..boots {
        let run = Boot::new(&format!("bench-drivers-{i}"), "dom0", "test=grantbench+xsbench")
            .hv_args("loglvl=info domu=bench:1 domu=granter:2")
            .domus(&[
                "scenario=drvbench peer=2 bytes=262144",
                "scenario=grants role=granter peer=1",
            ])
            .run();
        if !run.has("RESULT drvbench: done") || !run.has("TEST grantbench: PASS") {
            eprintln!("boot {i} did not finish its benchmarks; see target/test-logs/");
        }
        parse(&run.text(), &mut out);
    }
    out
}

fn xen(boots: usize) -> Figures {
    let mut out = BTreeMap::new();
    let dom0 = image("dom0");
    for _ in 0..boots {
        let dom0 = dom0.to_string_lossy();
        let args = ["--timeout", "120", "--until", "dom0: powering off", &dom0, "test=grantbench"];
        match xen_reference(&args) {
            Some(text) => parse(&text, &mut out),
            None => break,
        }
    }
    out
}

fn main() {
    let boots: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let o = ours(boots);
    let x = xen(boots);
    println!("medians over {boots} boots each (QEMU TCG); latencies in ns, rates in bytes/s");
    println!("| benchmark | xen-core | Xen 4.17 | Xen / xen-core |");
    println!("|---|---|---|---|");
    let names: std::collections::BTreeSet<&String> = o.keys().chain(x.keys()).collect();
    for n in names {
        let a = o.get(n).map(|v| median(v));
        let b = x.get(n).map(|v| median(v));
        let cell = |m: Option<u64>| m.map_or("-".to_string(), |v| v.to_string());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if a > 0 => format!("{:.2}", b as f64 / a as f64),
            _ => "-".into(),
        };
        println!("| {n} | {} | {} | {ratio} |", cell(a), cell(b));
    }
}
