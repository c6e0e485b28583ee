//! Block-device scenarios over the blkif frontend (`pv_guest::frontends::blk`), for the
//! system tests of dom0's blkback:
//! - `scenario=blk mode=write seed=<n> sectors=<n> [order=<n>] [restart=1]`: writes a
//!   pattern over the vbd's first `sectors` sectors in requests of several shapes (part of a
//!   page, 11 direct segments, indirect), restarts the frontend half-way if asked, flushes,
//!   reads it all back and compares, then discards a scratch range and reads zeros;
//! - `mode=verify seed=<n> sectors=<n>`: reads the pattern back (after a power-off and a new
//!   boot);
//! - `mode=durable seed=<n> at=<sector>`: writes one 4 KiB block, flushes, says so, and
//!   waits to be killed; `mode=verify-durable` finds it on the next boot.
//! - `scenario=blkhostile attack=<ring|gref|segment|range|storm|silent>`: a frontend that
//!   breaks the protocol one way; it reports whether the back end closed the device and let go
//!   of the ring's grants.
//!
//! Each prints `RESULT blk: ...` / `RESULT blkhostile: ...`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::GrantRef;
use hypercall_abi::io::blkif::*;
use pv_guest::frontends::blk::Blkfront;
use pv_guest::xenbus::XenbusState;
use pv_guest::xenstore::Store;
use pv_guest::{cmdline_param, println, time};

/// The first vbd, xvda.
const XVDA: u32 = 51712;

fn pattern(seed: u64, sector: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&sector.to_le_bytes());
    buf[8..16].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(16) {
        *b = (sector.wrapping_mul(131) ^ (i as u64).wrapping_mul(7) ^ seed.wrapping_mul(13)) as u8;
    }
}

/// The pattern of `n` sectors from `first`.
fn pattern_run(seed: u64, first: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n * 512];
    for (i, s) in v.chunks_mut(512).enumerate() {
        pattern(seed, first + i as u64, s);
    }
    v
}

/// Request shapes, in sectors: part of a page, a page, 11 pages (direct), 32 pages (indirect).
const SHAPES: [u64; 4] = [3, 8, 88, 256];

fn domid(xs: &mut dyn Store) -> Option<u16> {
    pv_guest::xenbus::read_u64(xs, "domid").and_then(|d| u16::try_from(d).ok())
}

fn connect(xs: &mut dyn Store, line: &str) -> Result<Blkfront, String> {
    let dom = domid(xs).ok_or("no domid in XenStore")?;
    let vdev = cmdline_param(line, "vdev", u64::from(XVDA)) as u32;
    let order = cmdline_param(line, "order", 2u64) as u32;
    let f = Blkfront::connect(xs, dom, vdev, order)?;
    println!(
        "blk: connected: {} sectors of {} bytes, ring of {} pages, flush {}, barrier {}, discard {}, {} indirect segments",
        f.sectors,
        f.sector_size,
        f.ring_pages(),
        f.features.flush,
        f.features.barrier,
        f.features.discard,
        f.features.max_indirect_segments
    );
    Ok(f)
}

/// Reads `n` sectors from `first` in the request shapes and compares with the pattern.
fn verify(f: &mut Blkfront, seed: u64, first: u64, n: u64) -> Result<(), String> {
    let mut at = first;
    let mut k = 0;
    while at < first + n {
        let len = SHAPES[k % SHAPES.len()].min(first + n - at);
        k += 1;
        let mut buf = vec![0u8; len as usize * 512];
        f.read(at, &mut buf)?;
        let want = pattern_run(seed, at, len as usize);
        if let Some(i) = buf.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(alloc::format!(
                "sector {} differs at byte {}",
                at + i as u64 / 512,
                i % 512
            ));
        }
        at += len;
    }
    Ok(())
}

fn write_verify(xs: &mut dyn Store, f: &mut Blkfront, line: &str) -> Result<String, String> {
    let seed = cmdline_param(line, "seed", 1u64);
    let n = cmdline_param(line, "sectors", 2048u64).min(f.sectors);
    let restart = cmdline_param(line, "restart", 0u64) != 0;
    let mut at = 0;
    let mut k = 0;
    let mut restarted = false;
    while at < n {
        let len = SHAPES[(k + 1) % SHAPES.len()].min(n - at);
        k += 1;
        f.write(at, &pattern_run(seed, at, len as usize), false)?;
        at += len;
        if restart && !restarted && at >= n / 2 {
            f.restart(xs)?;
            restarted = true;
            println!("blk: frontend restarted and reconnected at sector {at}");
        }
    }
    f.flush()?;
    verify(f, seed, 0, n)?;
    let mut discard = String::from("no discard");
    if f.features.discard && f.sectors >= n + 64 {
        let junk = vec![0xA5u8; 64 * 512];
        f.write(n, &junk, true)?;
        f.discard(n, 64)?;
        let mut back = vec![0xFFu8; 64 * 512];
        f.read(n, &mut back)?;
        if back.iter().any(|&b| b != 0) {
            return Err("discarded sectors do not read back as zeros".into());
        }
        discard = String::from("64 sectors discarded read back as zeros");
    }
    Ok(alloc::format!(
        "wrote {n} sectors in {} requests ({} indirect), flushed, read back identical; {discard}",
        f.requests,
        f.indirect_requests
    ))
}

pub fn run(line: &str) {
    let mode = pv_guest::cmdline_value(line, "mode").unwrap_or("write");
    let r = pv_guest::xenstore::with(|xs| -> Result<String, String> {
        let mut f = connect(xs, line)?;
        let seed = cmdline_param(line, "seed", 1u64);
        match mode {
            "write" => write_verify(xs, &mut f, line),
            "verify" => {
                let n = cmdline_param(line, "sectors", 2048u64).min(f.sectors);
                verify(&mut f, seed, 0, n)?;
                Ok(alloc::format!("verified {n} sectors written by an earlier boot"))
            }
            "durable" => {
                let at = cmdline_param(line, "at", 4096u64);
                f.write(at, &pattern_run(seed, at, 8), false)?;
                f.flush()?;
                println!("RESULT blk: ACK durable write of sectors {at}+8 seed {seed} flushed");
                // The test kills the machine now; until then, stay.
                loop {
                    time::sleep_ns(1_000_000_000);
                }
            }
            "verify-durable" => {
                let at = cmdline_param(line, "at", 4096u64);
                verify(&mut f, seed, at, 8)?;
                Ok(alloc::format!("the flushed write at sector {at} survived"))
            }
            other => Err(alloc::format!("unknown mode {other}")),
        }
    });
    match r {
        Some(Ok(s)) => println!("RESULT blk: PASS {s}"),
        Some(Err(e)) => println!("RESULT blk: FAIL {e}"),
        None => println!("RESULT blk: FAIL no XenStore"),
    }
}

/// A plain read of one page at `sector`, with its one segment as given.
fn read_req(f: &Blkfront, sector: u64, gref: GrantRef, first: u8, last: u8) -> BlkifRequest {
    let mut r = BlkifRequest {
        operation: BLKIF_OP_READ,
        nr_segments: 1,
        id: 0xBAD,
        sector_number: sector,
        ..Default::default()
    };
    r.seg[0] = BlkifRequestSegment { gref, first_sect: first, last_sect: last, _pad: 0 };
    let _ = f;
    r
}

pub fn hostile(line: &str) {
    let attack = pv_guest::cmdline_value(line, "attack").unwrap_or("ring");
    let r = pv_guest::xenstore::with(|xs| -> Result<String, String> {
        let mut f = connect(xs, line)?;
        let good = f.data_gref(0);
        match attack {
            "ring" => {
                // req_prod far past anything the ring can hold.
                f.ring_page().u32_at(0).store(1000, core::sync::atomic::Ordering::Release);
                if let Some(p) = f.port() {
                    let _ = pv_guest::events::send(p);
                }
            }
            // A grant ref this domain never granted.
            "gref" => f.push_raw(read_req(&f, 0, GrantRef(450), 0, 7))?,
            // Sectors 0..=9 of a page of eight.
            "segment" => f.push_raw(read_req(&f, 0, good, 0, 9))?,
            "range" => f.push_raw(read_req(&f, f.sectors - 4, good, 0, 7))?,
            "storm" => {
                let port = f.port().ok_or("not connected")?;
                let end = time::now_ns() + cmdline_param(line, "seconds", 2u64) * 1_000_000_000;
                let mut n = 0u64;
                while time::now_ns() < end && f.backend_state(xs) == XenbusState::Connected {
                    for _ in 0..100 {
                        let _ = hypercall_abi::guest::evtchn_send(port);
                    }
                    n += 100;
                }
                println!("blkhostile: sent {n} events with nothing on the ring");
            }
            "silent" => {
                // Fill the ring, never read an answer, never close: then sit.
                let mut pushed = 0;
                while f.push_raw(read_req(&f, 0, good, 0, 7)).is_ok() {
                    pushed += 1;
                }
                println!("blkhostile: {pushed} requests pushed; no answer will be read");
                time::sleep_ns(cmdline_param(line, "seconds", 3u64) * 1_000_000_000);
                return Ok(String::from("silent frontend done"));
            }
            other => return Err(alloc::format!("unknown attack {other}")),
        }
        let be = backend_dir(xs)?;
        let closed = pv_guest::frontends::blk::wait_state(
            xs,
            &be,
            |s| matches!(s, XenbusState::Closing | XenbusState::Closed),
            10_000_000_000,
        );
        if !matches!(closed, XenbusState::Closing | XenbusState::Closed) {
            return Err(alloc::format!("the back end stayed {closed:?}"));
        }
        let released = f.teardown(xs, 5_000_000_000);
        Ok(alloc::format!(
            "{attack}: the back end closed the device; ring grants {}",
            if released { "released" } else { "STILL MAPPED" }
        ))
    });
    match r {
        Some(Ok(s)) => println!("RESULT blkhostile: {s}"),
        Some(Err(e)) => println!("RESULT blkhostile: FAIL {e}"),
        None => println!("RESULT blkhostile: FAIL no XenStore"),
    }
}

fn backend_dir(xs: &mut dyn Store) -> Result<String, String> {
    let dom = domid(xs).ok_or("no domid")?;
    let fe = pv_guest::xenbus::frontend_dir(dom, "vbd", XVDA);
    pv_guest::xenbus::backend_of(xs, &fe).map(|p| p.dir).ok_or_else(|| "no backend".into())
}
