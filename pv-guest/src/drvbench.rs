//! Benchmarks of the pieces a split driver is made of, as a guest sees them: grant map+unmap
//! against grant copy for a 4 KiB page (with a plain 4 KiB memcpy as the floor), a XenStore
//! read over the ring to dom0's xenstored, and console throughput through the PV console ring
//! against `console_io` straight to the hypervisor. Latencies print as `BENCH` lines (the
//! format `selftest` uses), rates as `RATE <name>: <n> bytes/s`; `tests/src/bin/bench-drivers.rs`
//! collects them.
//!
//! - dom0 `test=grantbench`: grants a page of its own to itself and maps/copies it (runs the
//!   same on real Xen, so the figures compare directly).
//! - domU `scenario=drvbench peer=<domid> [bytes=<n>]`: maps and copies ref 8 of `peer` (which
//!   runs `scenario=grants role=granter peer=<us>`), then the XenStore and console figures.

use alloc::string::String;
use alloc::vec;
use core::sync::atomic::Ordering;

use hypercall_abi::{DomId, GrantRef, guest};

use crate::bench::{bench_line, measure};
use crate::grant::CopyDir;
use crate::{console, grant, memory::pages, println, time};

/// Batches per figure (the median batch is reported) and operations per batch.
const BATCHES: usize = 11;
const ITERS: u64 = 200;

/// Grant figures for `gref` of `dom`, which must grant us read access to a page.
pub fn grant_bench(dom: DomId, gref: GrantRef) -> Result<(), String> {
    let mine = pages::alloc_page().ok_or("no free page")?;
    let mut buf = vec![0u8; 4096];
    // Once by hand, so a refusal is an error rather than a fast figure, and the copy must
    // bring exactly what the mapping shows.
    let m = grant::map(dom, gref, true).map_err(|s| alloc::format!("map: {s}"))?;
    let mut seen = vec![0u8; 4096];
    m.page().read(0, &mut seen);
    grant::unmap(m).map_err(|s| alloc::format!("unmap: {s}"))?;
    mine.shared().write(0, &[0xFF; 4096]);
    let copy = || grant::copy(&mine, 0, dom, gref, 0, 4096, CopyDir::FromGrant);
    match copy() {
        0 => {}
        s => return Err(alloc::format!("copy: {s}")),
    }
    mine.shared().read(0, &mut buf);
    if buf != seen {
        return Err("the copy differs from the granted page".into());
    }
    let mut failures = 0u32;
    bench_line(
        "grant-map-unmap",
        measure(BATCHES, ITERS, || match grant::map(dom, gref, true) {
            Ok(m) => failures += u32::from(grant::unmap(m).is_err()),
            Err(_) => failures += 1,
        }),
    );
    bench_line(
        "grant-map-read4k-unmap",
        measure(BATCHES, ITERS, || match grant::map(dom, gref, true) {
            Ok(m) => {
                m.page().read(0, &mut buf);
                failures += u32::from(grant::unmap(m).is_err());
            }
            Err(_) => failures += 1,
        }),
    );
    bench_line(
        "grant-copy-4k",
        measure(BATCHES, ITERS, || {
            failures += u32::from(copy() != 0);
        }),
    );
    // The floors: reading 4 KiB of an already-mapped shared page the way the mapping variant
    // does, and a plain memcpy between private buffers.
    let page = mine.shared();
    bench_line("shared-read-4k", measure(BATCHES, ITERS, || page.read(0, &mut buf)));
    let src = vec![0x5au8; 4096];
    bench_line(
        "memcpy-4k",
        measure(BATCHES, ITERS, || {
            buf.copy_from_slice(core::hint::black_box(&src));
            core::hint::black_box(&mut buf);
        }),
    );
    if failures > 0 {
        return Err(alloc::format!("{failures} operations failed during the run"));
    }
    Ok(())
}

/// dom0 maps and copies a page it granted to itself (`test=grantbench`).
pub fn grant_self() -> Result<(), String> {
    if !crate::start_info().is_initdomain() {
        return Err("dom0 only (a domU uses scenario=drvbench)".into());
    }
    let page = pages::alloc_page().ok_or("no free page")?;
    let pattern: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    page.shared().write(0, &pattern);
    let gref = grant::alloc_ref().ok_or("no free grant ref")?;
    grant::grant_access(gref, DomId(0), page.mfn(), true);
    let r = grant_bench(DomId(0), gref);
    grant::end_access(gref);
    r
}

/// A domU's driver figures against `peer`'s granted ref 8 and dom0's services.
pub fn run(line: &str) {
    let peer = crate::cmdline_value(line, "peer").and_then(|v| v.parse().ok()).map(DomId);
    let bytes: usize = crate::cmdline_param(line, "bytes", 1 << 18);
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
    let r = grant_bench(peer, gref);
    m.page().u64_at(8).store(0xBEEF, Ordering::Release);
    let _ = grant::unmap(m);
    r
}

/// Round trips of a XenStore read of our own `domid` (request on the ring, dom0 wakes,
/// answers, we wake).
fn xenstore_bench() -> Result<(), String> {
    use crate::xenstore::Store;
    let r = crate::xenstore::with(|xs| {
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
