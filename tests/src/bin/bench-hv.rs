//! Hypervisor micro-benchmarks, ours and real Xen 4.17's, in one run under the same TCG:
//! null hypercall, the syscall/sysret floor (ours only: a probe in our entry path), a
//! loopback event-channel send, a lone yield (the same pv-guest image, booted as dom0, on
//! both), then the two-domain figures (ours only: the reference tool boots dom0 alone):
//! event-channel round trip between two domUs and a yield ping-pong between two domUs (a
//! domain switch each way).
//! Run as `cargo run --release -p tests --bin bench-hv [boots]` after `./scripts/build`.

use std::collections::BTreeMap;

use tests::{Boot, image, median, parse_bench, xen_reference};

type Figures = BTreeMap<String, Vec<(u64, u64)>>;

/// The `BENCH` lines of a run: (cycles, ns) per benchmark name.
fn parse(text: &str, into: &mut Figures) {
    for (name, cycles, ns) in text.lines().filter_map(parse_bench) {
        into.entry(name.to_string()).or_default().push((cycles, ns));
    }
}

/// Medians of the cycles and of the ns, each on its own.
fn medians(v: &[(u64, u64)]) -> (u64, u64) {
    let c: Vec<u64> = v.iter().map(|x| x.0).collect();
    let n: Vec<u64> = v.iter().map(|x| x.1).collect();
    (median(&c), median(&n))
}

fn ours(boots: usize) -> Figures {
    let mut out = BTreeMap::new();
    for i in 0..boots {
        let mut b = Boot::new(&format!("bench-hv-{i}"), "pv-guest", "test=bench+mmubench floor=1")
            .hv_args("loglvl=info floor_probe");
        b.memory_mib = 1024;
        parse(&b.run().text(), &mut out);
        let y = Boot::new(&format!("bench-yield-{i}"), "dom0", "")
            .hv_args("loglvl=info domu=a:1:16M domu=b:2:16M")
            .domus(&["scenario=yieldpair", "scenario=yieldpair"]);
        parse(&y.run().text(), &mut out);
        let p = Boot::new(&format!("bench-pingpong-{i}"), "dom0", "")
            .hv_args("loglvl=info domu=ping:1 domu=pong:2")
            .domus(&[
                "scenario=pingpong role=ping peer=2 rounds=20000",
                "scenario=pingpong role=pong peer=1 rounds=20000",
            ]);
        parse(&p.run().text(), &mut out);
    }
    out
}

fn xen(boots: usize) -> Figures {
    let mut out = BTreeMap::new();
    let kernel = image("pv-guest");
    for _ in 0..boots {
        let kernel = kernel.to_string_lossy();
        let args = [
            "--timeout",
            "120",
            "--until",
            "pv-guest: shutting down",
            &kernel,
            "test=bench+mmubench",
        ];
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
    println!(
        "medians over {boots} boots each (QEMU 7.2 TCG, -m 1024); each boot's figure is itself a median"
    );
    println!(
        "| benchmark | xen-core cycles | xen-core ns | Xen 4.17 cycles | Xen 4.17 ns | Xen / xen-core |"
    );
    println!("|---|---|---|---|---|---|");
    let names: std::collections::BTreeSet<&String> = o.keys().chain(x.keys()).collect();
    for n in names {
        let a = o.get(n).map(|v| medians(v));
        let b = x.get(n).map(|v| medians(v));
        let cell = |m: Option<(u64, u64)>| {
            m.map_or(("-".into(), "-".into()), |(c, ns)| (c.to_string(), ns.to_string()))
        };
        let (ac, an) = cell(a);
        let (bc, bn) = cell(b);
        let ratio = match (a, b) {
            (Some(a), Some(b)) if a.1 > 0 => format!("{:.2}", b.1 as f64 / a.1 as f64),
            _ => "-".into(),
        };
        println!("| {n} | {ac} | {an} | {bc} | {bn} | {ratio} |");
    }
}
