//! Benchmarks of the pieces a split driver is made of, as a domU sees them
//! (`scenario=drvbench peer=<domid> [bytes=<n>]`): grant map+unmap against grant copy for a
//! 4 KiB page of `peer` (ref 8; `peer` runs `scenario=grants role=granter peer=<us>`), a
//! XenStore read over the ring to dom0's xenstored, and console throughput through the PV
//! console ring against `console_io` straight to the hypervisor. Latencies print as `BENCH`
//! lines, rates as `RATE <name>: <n> bytes/s`; `tests/src/bin/bench-drivers.rs` collects them.
//! dom0's half (`test=grantbench+xsbench`) is a self-test: `selftest::grants`.

use alloc::string::String;
use core::sync::atomic::Ordering;

use hypercall_abi::{DomId, GrantRef, guest};
use pv_guest::bench::{bench_line, measure};
use pv_guest::{console, grant, println, time};

use crate::kernel::selftest::grants;

/// Batches per figure (the median batch is reported).
const BATCHES: usize = 11;

/// A domU's driver figures against `peer`'s granted ref 8 and dom0's services.
pub fn run(line: &str) {
    let peer = pv_guest::cmdline_value(line, "peer").and_then(|v| v.parse().ok()).map(DomId);
    let bytes: usize = pv_guest::cmdline_param(line, "bytes", 1 << 18);
    bench_line(
        "null-hypercall",
        measure(BATCHES, 2000, || {
            let _ = guest::xen_version(0);
        }),
    );
    match xenstore_bench() {
        Ok(()) => {}
        Err(e) => println!("RESULT drvbench: FAIL xenstore: {e}"),
    }
    if let Some(peer) = peer {
        match grant_with_peer(peer) {
            Ok(()) => {}
            Err(e) => println!("RESULT drvbench: FAIL grants: {e}"),
        }
    }
    match console_bench(bytes) {
        Ok(()) => println!("RESULT drvbench: done"),
        Err(e) => println!("RESULT drvbench: FAIL console: {e}"),
    }
}

/// Waits for `peer`'s grant, measures, then tells the granter we are done (it waits for
/// 0xBEEF at offset 8 before ending access).
fn grant_with_peer(peer: DomId) -> Result<(), String> {
    let gref = GrantRef(8);
    let deadline = time::now_ns() + 10_000_000_000;
    let m = loop {
        match grant::map(peer, gref, false) {
            Ok(m) => break m,
            Err(_) if time::now_ns() < deadline => time::sleep_ns(5_000_000),
            Err(s) => return Err(alloc::format!("ref 8 of d{} never came: {s}", peer.0)),
        }
    };
    let r = grants::grant_bench(peer, gref);
    m.page().u64_at(8).store(0xBEEF, Ordering::Release);
    let _ = grant::unmap(m);
    r
}

/// Round trips of a XenStore read of our own `domid` (request on the ring, dom0 wakes,
/// answers, we wake).
fn xenstore_bench() -> Result<(), String> {
    use pv_guest::xenstore::Store;
    let r = pv_guest::xenstore::with(|xs| {
        xs.read_str(0, "domid").map_err(|e| e.0)?;
        let mut bad = 0u32;
        let c = measure(BATCHES, 50, || bad += u32::from(xs.read_str(0, "domid").is_err()));
        if bad > 0 {
            return Err(alloc::format!("{bad} reads failed"));
        }
        Ok(c)
    });
    bench_line("xenstore-read", r.ok_or("no XenStore connection")??);
    Ok(())
}

/// `bytes` of 80-byte lines through the PV console ring (until dom0 has drained it all) and
/// then straight through `console_io`: both end on the same serial line, so the ratio is what
/// the ring and dom0's back end cost.
fn console_bench(bytes: usize) -> Result<(), String> {
    if !console::on_ring() {
        return Err("no PV console ring".into());
    }
    let mut line = [b'c'; 80];
    line[79] = b'\n';
    let n = (bytes / line.len()).max(1) as u64;
    let total = n * line.len() as u64;
    console::flush(1_000_000_000);
    let t0 = time::now_ns();
    for _ in 0..n {
        console::write_bytes(&line);
    }
    if !console::flush(30_000_000_000) || !console::on_ring() {
        return Err("dom0 did not drain the ring".into());
    }
    let ring_ns = (time::now_ns() - t0).max(1);
    let t0 = time::now_ns();
    for _ in 0..n {
        let _ = guest::console_io_write(&line);
    }
    let io_ns = (time::now_ns() - t0).max(1);
    println!("RATE console-ring: {} bytes/s", total * 1_000_000_000 / ring_ns);
    println!("RATE console-io: {} bytes/s", total * 1_000_000_000 / io_ns);
    Ok(())
}
