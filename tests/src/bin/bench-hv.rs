//! Hypervisor micro-benchmarks, ours and real Xen 4.17's, in one run under the same TCG:
//! null hypercall, the syscall/sysret floor (ours only: a probe in our entry path), a
//! loopback event-channel send, a lone yield (same dom0 image on both), then the two-domain
//! figures (ours only: the reference tool boots dom0 alone): event-channel round trip between
//! two domUs and a yield ping-pong between two domUs (a domain switch each way).
//! Run as `cargo run --release -p tests --bin bench-hv [boots]` after `./scripts/build`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use tests::{Boot, image, root};

/// `BENCH name: median C cycles (N ns)` lines of a run.
fn parse(text: &str, into: &mut BTreeMap<String, Vec<(u64, u64)>>) {
    for l in text.lines().filter(|l| l.contains("BENCH ")) {
        let rest = l.split("BENCH ").nth(1).unwrap();
        let name = rest.split(':').next().unwrap().to_string();
        let cycles: u64 =
            rest.split("median ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        let ns: u64 = rest.split('(').nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        into.entry(name).or_default().push((cycles, ns));
    }
}

fn median(v: &[(u64, u64)]) -> (u64, u64) {
    let mut c: Vec<u64> = v.iter().map(|x| x.0).collect();
    let mut n: Vec<u64> = v.iter().map(|x| x.1).collect();
    c.sort_unstable();
    n.sort_unstable();
    (c[c.len() / 2], n[n.len() / 2])
}

fn ours(boots: usize) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut out = BTreeMap::new();
    for i in 0..boots {
        let mut b = Boot::new(&format!("bench-hv-{i}"), "dom0", "test=bench+mmubench floor=1");
        b.memory_mib = 1024;
        parse(&b.run().text(), &mut out);
        let pair = |args: &str| (image("pv-guest"), args.to_string());
        let mut y = Boot::new(&format!("bench-yield-{i}"), "dom0", "")
            .hv_args("loglvl=info domu=a:1:16M domu=b:2:16M");
        for m in [pair("scenario=yieldpair"), pair("scenario=yieldpair")] {
            y = y.module(m.0, &m.1);
        }
        parse(&y.run().text(), &mut out);
        let mut p = Boot::new(&format!("bench-pingpong-{i}"), "dom0", "")
            .hv_args("loglvl=info domu=ping:1 domu=pong:2");
        for m in [
            pair("scenario=pingpong role=ping peer=2 rounds=20000"),
            pair("scenario=pingpong role=pong peer=1 rounds=20000"),
        ] {
            p = p.module(m.0, &m.1);
        }
        parse(&p.run().text(), &mut out);
    }
    out
}

fn xen(boots: usize) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut out = BTreeMap::new();
    let tool = root().join("../shared/tools/xen-reference");
    if !tool.exists() {
        eprintln!("{} not found: no Xen figures", tool.display());
        return out;
    }
    for _ in 0..boots {
        let o = Command::new(&tool)
            .args(["--timeout", "120", "--until", "dom0: powering off"])
            .arg(image("dom0"))
            .arg("test=bench+mmubench")
            .stdin(Stdio::null())
            .output();
        if let Ok(o) = o {
            parse(&String::from_utf8_lossy(&o.stdout), &mut out);
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
        let a = o.get(n).map(|v| median(v));
        let b = x.get(n).map(|v| median(v));
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
