//! The lmbench-style table of issue 12, in the manner of the Xen paper (SOSP'03): the same
//! Debian Linux kernel and initramfs (`tests::linux`) natively under QEMU TCG (no hypervisor),
//! as a 256 MiB domU on xen-core beside our dom0, and as dom0 on real Xen 4.17
//! (`../shared/tools/xen-reference`), in one run. Each boot runs `linux-probe bench` (null
//! syscall, fork+exit, fork+exec, pipe round trip, page fault, mmap of 16 MiB) and marks when
//! its shell would start, which also gives the time from QEMU's start to the prompt.
//!
//! `cargo run --release -p tests --bin bench-linux [N]` after `./scripts/build`: N boots of
//! each (default 3); prints each figure's median per configuration, and the ratios.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use tests::linux::{INIT_SHELL, linux_guest};
use tests::{Boot, median, xen_reference};

/// One boot's figures: name -> ns, and "boot-to-shell" -> ms.
type Figures = BTreeMap<String, f64>;

fn parse(text: &str, shell_at: Option<f64>) -> Figures {
    let mut f = Figures::new();
    for line in text.lines() {
        if let Some(rest) = line.split("BENCH linux-").nth(1)
            && let Some((name, v)) = rest.split_once(": ")
            && let Some(ns) = v.split_whitespace().next().and_then(|n| n.parse::<f64>().ok())
        {
            f.insert(name.to_string(), ns);
        }
    }
    if let Some(t) = shell_at {
        f.insert("boot-to-shell-ms".into(), t * 1000.0);
    }
    f
}

/// Native: QEMU boots the kernel itself, console on the serial line.
fn native(kernel: &str, initramfs: &str) -> Figures {
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["300", "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-kernel", kernel, "-initrd", initramfs])
        .args(["-append", "console=ttyS0 probe=bench"])
        .stdin(Stdio::null())
        .output()
        .expect("qemu runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // No per-line stamps here: the prompt's time is taken as the end of the run minus the
    // power-off, which is immediate.
    let at = text.contains(INIT_SHELL).then(|| start.elapsed().as_secs_f64());
    parse(&text, at)
}

/// A domU on xen-core, beside our dom0.
fn xen_core(kernel: &std::path::Path, initramfs: &std::path::Path) -> Figures {
    let run = Boot::new("bench-linux", "dom0", "")
        .hv_args("loglvl=info smap=0 domu=linux:1:256M domu_ramdisk=linux:2")
        .module(kernel.to_path_buf(), "console=hvc0 probe=bench")
        .module(initramfs.to_path_buf(), "")
        .memory_mib(1024)
        .until("BENCH linux-done")
        .timeout_secs(400)
        .run();
    let text = run.text();
    parse(&text, run.time_of(INIT_SHELL).or_else(|| run.time_of("BENCH linux-done")))
}

/// dom0 on real Xen 4.17 (the only way the tool boots a kernel).
fn xen(kernel: &str, initramfs: &str) -> Option<Figures> {
    let until = "BENCH linux-done";
    let text = xen_reference(&[
        "--timeout",
        "400",
        "--stamp",
        "--until",
        until,
        kernel,
        "console=hvc0",
        "probe=bench",
        "--",
        initramfs,
    ])?;
    let at = text
        .lines()
        .find(|l| l.contains(until))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    Some(parse(&text, at))
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let g = linux_guest().expect("the Debian Linux image (tests::linux)");
    let (k, i) =
        (g.kernel.to_str().unwrap().to_string(), g.initramfs.to_str().unwrap().to_string());
    let mut rows: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    for round in 0..n {
        eprintln!("round {} of {n}", round + 1);
        let boots = [Some(native(&k, &i)), Some(xen_core(&g.kernel, &g.initramfs)), xen(&k, &i)];
        for (col, f) in boots.iter().enumerate() {
            for (name, v) in f.iter().flatten() {
                rows.entry(name.clone()).or_default()[col].push(*v);
            }
        }
    }
    println!("medians of {n} boots each (QEMU 7.2 TCG, -m 1024; ns, boot in ms)");
    println!("| | native | xen-core domU | Xen 4.17 dom0 | xen-core / Xen |");
    println!("|---|---|---|---|---|");
    for (name, cols) in &rows {
        let m: Vec<Option<f64>> = cols.iter().map(|v| (!v.is_empty()).then(|| median(v))).collect();
        let cell = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
        let ratio = match (m[1], m[2]) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        println!("| {name} | {} | {} | {} | {ratio} |", cell(m[0]), cell(m[1]), cell(m[2]));
    }
}
