//! TCP between a guest and the host, against dom0's own TCP on its NIC, in the same boot:
//! an echo server on the host (127.0.0.1, QEMU's gateway 10.0.2.2 to the guests); dom0 runs
//! the echo client on its virtio NIC first (`netbench=`, the baseline), then a pv-guest domU
//! runs the same client (the same smoltcp code, `pv_guest::netstack`) through its netfront,
//! dom0's netback and bridge and the same NIC. Figures: the median round trip of 32 bytes and
//! the bulk echo rate (bytes each way, every byte checked). Run as
//! `cargo run --release -p tests --bin bench-net [boots] [bytes]` after `./scripts/build`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;

use tests::{Boot, guest_archive, median, pv_guest_file};

/// An echo server on the host: every connection echoed in a thread of its own.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut s = s;
                let mut buf = [0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn main() {
    let mut args = std::env::args().skip(1);
    let boots: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let bytes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let port = echo_server();
    let client = format!(
        "name = \"client\"\nkernel = \"pv-guest\"\nmemory = 24\nvif = [ '' ]\n\
         extra = \"scenario=tcp-client ip=10.0.2.16 server=10.0.2.2:{port} bytes={bytes} rtts=50 seconds=120\"\n"
    );
    let archive =
        guest_archive("bench-net", &[pv_guest_file(), ("client.cfg", client.into_bytes())]);
    let mut figures: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..boots {
        let run = Boot::new(
            &format!("bench-net-{i}"),
            "dom0",
            &format!("netbench=10.0.2.2:{port} netbench_bytes={bytes} create=client"),
        )
        .module(archive.clone(), "")
        .nic(None)
        .timeout_secs(300)
        .run();
        if !run.has("RESULT netbench: ok") || !run.has("RESULT tcp-client: ok") {
            eprintln!(
                "boot {i} did not finish both clients; see target/test-logs/bench-net-{i}.log"
            );
        }
        for l in run.text().lines() {
            let Some((name, v)) = l.split("NETBENCH ").nth(1).and_then(|r| r.split_once(": "))
            else {
                continue;
            };
            if let Ok(v) = v.trim().parse::<u64>() {
                figures.entry(name.to_string()).or_default().push(v);
            }
        }
    }
    println!("TCP echo with the host, {bytes} bytes bulk, medians of {boots} boots:");
    for (name, v) in &figures {
        println!("  {name:24} {:>8}   runs {v:?}", median(v));
    }
    // Each boot's own ratio (both figures from the same boot, so the machine's load on that
    // boot cancels out), then their median.
    for (what, name) in [("throughput", "tcp_echo_kib_s"), ("round trip", "tcp_rtt_us")] {
        let (Some(d), Some(u)) =
            (figures.get(&format!("dom0_{name}")), figures.get(&format!("domU_{name}")))
        else {
            continue;
        };
        let ratios: Vec<f64> = d.iter().zip(u).map(|(&d, &u)| u as f64 / d.max(1) as f64).collect();
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!("  {what} domU / dom0: median {:.2}, per boot {shown:?}", median(&ratios));
    }
}
