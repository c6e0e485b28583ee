//! dom0's self-tests and benchmarks of the devices it drives, run at start when its command
//! line asks (`devtest=1`, `devbench=1`). Each prints one line a system test looks for:
//! - disk: a pattern written to a scratch area (the last 4 KiB of the disk, its old contents
//!   saved and put back), flushed, read back and compared;
//! - NIC: an ARP request for QEMU's user-network gateway (10.0.2.2) answered, then ICMP echo
//!   requests answered, with the round-trip time;
//! - benchmarks: sequential write and read MB/s, random 4 KiB read and write IOPS on the disk
//!   natively (dom0 and the device, no guest), and the raw-frame round trip to the gateway.

use alloc::vec::Vec;

use pv_guest::{println, time};

use super::dma::{self, DmaBuf};
use super::ethernet;
use super::virtio::Virtio;
use super::virtio::blk::{Disk, DiskError};
use super::virtio::net::Nic;

/// QEMU's user network: our address and the gateway's.
const MY_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY: [u8; 4] = [10, 0, 2, 2];
const SECTOR: usize = 512;

fn buf(b: &DmaBuf) -> &'static mut [u8] {
    #[allow(unsafe_code)]
    // SAFETY: a DmaBuf is dom0's own pages, mapped for dom0's life, used by one test at a time
    // through this one slice.
    unsafe {
        core::slice::from_raw_parts_mut(b.va as *mut u8, 4096 * b.pages)
    }
}

/// `XENMEM_exchange` gives dom0 machine-contiguous pages whose P2M, M2P and mapping agree,
/// and a device can read into them.
fn exchange_selftest(v: &mut Virtio) -> Result<u64, &'static str> {
    let b = dma::alloc_exchanged(4).ok_or("XENMEM_exchange failed")?;
    let si = pv_guest::start_info();
    let pfn0 = (b.va - pv_guest::arch::VIRT_BASE) >> 12;
    for k in 0..4u64 {
        let mfn = (b.maddr >> 12) + k;
        let p2m = pv_guest::memory::shared::p2m_entry(si, pfn0 + k);
        let m2p = pv_guest::memory::shared::m2p_entry(mfn);
        if p2m != Some(mfn) || m2p != pfn0 + k || dma::mfn_of(b.va + 4096 * k) != Some(mfn) {
            return Err("P2M, M2P or the mapping disagrees after the exchange");
        }
    }
    if buf(&b).iter().any(|&x| x != 0) {
        return Err("exchanged pages not zeroed");
    }
    if let Some(d) = v.disks.first_mut() {
        d.read(0, buf(&b)).map_err(|_| "a disk read into exchanged pages failed")?;
    }
    let maddr = b.maddr;
    dma::free(b);
    Ok(maddr)
}

/// Runs the self-test of every device found.
pub fn selftest(v: &mut Virtio) {
    match exchange_selftest(v) {
        Ok(maddr) => println!(
            "dom0: dma selftest ok: XENMEM_exchange gave 4 machine-contiguous pages at {maddr:#x}"
        ),
        Err(e) => println!("dom0: dma selftest FAILED: {e}"),
    }
    if v.disks.is_empty() && v.nics.is_empty() {
        println!("dom0: devtest: no virtio devices");
    }
    for d in &mut v.disks {
        match disk_selftest(d) {
            Ok(at) => println!(
                "dom0: virtio-blk {} selftest ok: 4096 bytes written at sector {at}, flushed, \
                 read back identical ({} interrupts)",
                d.bdf, d.interrupts
            ),
            Err(e) => println!("dom0: virtio-blk {} selftest FAILED: {e}", d.bdf),
        }
    }
    for n in &mut v.nics {
        match nic_selftest(n, 5) {
            Ok((gw, replies, rtt_us)) => println!(
                "dom0: virtio-net {} selftest ok: mac {}, gateway 10.0.2.2 is at {}, \
                 {replies}/5 echo replies, median rtt {rtt_us} us ({} interrupts)",
                n.bdf,
                mac_str(n.mac()),
                mac_str(gw),
                n.interrupts
            ),
            Err(e) => println!("dom0: virtio-net {} selftest FAILED: {e}", n.bdf),
        }
    }
}

fn mac_str(m: [u8; 6]) -> alloc::string::String {
    alloc::format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

fn disk_selftest(d: &mut Disk) -> Result<u64, &'static str> {
    let sectors = d.sectors();
    if sectors < 16 {
        return Err("disk smaller than 8 KiB");
    }
    if d.is_read_only() {
        return Err("disk is read-only");
    }
    let at = sectors - 8;
    let (saved, pattern) =
        (dma::alloc(1).ok_or("no DMA page")?, dma::alloc(1).ok_or("no DMA page")?);
    let check = dma::alloc(1).ok_or("no DMA page")?;
    let result = (|| {
        d.read(at, buf(&saved)).map_err(|_| "reading the scratch area failed")?;
        for (i, b) in buf(&pattern).iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(0xA5) ^ (i >> 8) as u8;
        }
        d.write(at, buf(&pattern)).map_err(|_| "writing the pattern failed")?;
        d.flush().map_err(|_| "flush failed")?;
        // Read into a heap buffer too, 8 KiB ending with the scratch area: two pages or three,
        // handed over in place if machine-contiguous, bounced through the pool if not.
        let mut heap = alloc::vec![0u8; 8192];
        d.read(at - 8, &mut heap).map_err(|_| "reading back into the heap failed")?;
        d.read(at, buf(&check)).map_err(|_| "reading back failed")?;
        if heap[4096..] != *buf(&pattern) || buf(&check) != buf(&pattern) {
            return Err("read back differs from what was written");
        }
        // Out-of-range and badly sized requests are refused before the device sees them.
        if d.read(sectors, buf(&check)) != Err(DiskError::OutOfRange)
            || d.read(0, &mut buf(&check)[..100]) != Err(DiskError::BadLength)
        {
            return Err("a bad request was not refused");
        }
        d.write(at, buf(&saved)).map_err(|_| "restoring the scratch area failed")?;
        d.flush().map_err(|_| "flush failed")?;
        Ok(at)
    })();
    for b in [saved, pattern, check] {
        dma::free(b);
    }
    // The device may finish a request before dom0 looks (QEMU's raw files complete at once):
    // its interrupt still comes, as an event.
    if d.interrupts == 0 && d.irq().wait(time::now_ns() + 1_000_000_000) {
        d.service_interrupt();
    }
    if d.interrupts == 0 {
        return Err("no interrupt arrived");
    }
    result
}

/// Sends `frame` and waits up to `timeout_ms` for a frame `matches` accepts.
fn exchange<T>(
    n: &mut Nic,
    frame: &[u8],
    timeout_ms: u64,
    mut matches: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, &'static str> {
    n.send(frame).map_err(|_| "send failed")?;
    let deadline = time::now_ns() + timeout_ms * 1_000_000;
    loop {
        while let Some(f) = n.recv() {
            if let Some(t) = matches(&f) {
                return Ok(Some(t));
            }
        }
        if !n.wait(deadline) {
            return Ok(None);
        }
    }
}

/// ARP for the gateway, then `pings` echo requests: (gateway MAC, replies, median rtt µs).
fn nic_selftest(n: &mut Nic, pings: u16) -> Result<([u8; 6], u16, u64), &'static str> {
    let me = n.mac();
    let arp = ethernet::arp_request(me, MY_IP, GATEWAY);
    let mut gw = None;
    for _ in 0..3 {
        gw = exchange(n, &arp, 1000, |f| ethernet::parse_arp_reply(f, GATEWAY))?;
        if gw.is_some() {
            break;
        }
    }
    let gw = gw.ok_or("no ARP reply from 10.0.2.2")?;
    let mut rtts = Vec::new();
    for seq in 0..pings {
        let req = ethernet::icmp_echo_request(me, MY_IP, gw, GATEWAY, 0xD0, seq, b"xen-core dom0");
        let t0 = time::now_ns();
        let got = exchange(n, &req, 1000, |f| {
            (ethernet::parse_echo_reply(f, GATEWAY, 0xD0) == Some(seq)).then_some(())
        })?;
        if got.is_some() {
            rtts.push((time::now_ns() - t0) / 1000);
        }
    }
    if rtts.is_empty() {
        return Err("no echo reply from 10.0.2.2");
    }
    if n.interrupts == 0 && n.wait(time::now_ns() + 1_000_000_000) {
        n.service();
    }
    if n.interrupts == 0 {
        return Err("no interrupt arrived");
    }
    let replies = rtts.len() as u16;
    rtts.sort_unstable();
    Ok((gw, replies, rtts[rtts.len() / 2]))
}

/// Disk and network benchmarks.
pub fn bench(v: &mut Virtio) {
    for d in &mut v.disks {
        if let Err(e) = disk_bench(d) {
            println!("dom0: virtio-blk {} bench FAILED: {e}", d.bdf);
        }
    }
    for n in &mut v.nics {
        match nic_selftest(n, 50) {
            Ok((_, replies, rtt)) => {
                println!("DEVBENCH net-icmp-rtt: {rtt} us median over {replies} echo replies")
            }
            Err(e) => println!("dom0: virtio-net {} bench FAILED: {e}", n.bdf),
        }
    }
}

/// A small deterministic generator for random sector numbers.
fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn disk_bench(d: &mut Disk) -> Result<(), &'static str> {
    // Requests of 64 KiB when a contiguous buffer can be had, else of one page.
    let (b, chunk) = match dma::alloc(16) {
        Some(b) => (b, 16 * 4096),
        None => (dma::alloc(1).ok_or("no DMA page")?, 4096),
    };
    let area = (16u64 << 20).min(d.sectors() * SECTOR as u64 / 2);
    let nreq = area / chunk as u64;
    let per = (chunk / SECTOR) as u64;
    let data = &mut buf(&b)[..chunk];
    data.fill(0x5A);
    let mb_s = |bytes: u64, ns: u64| bytes * 1000 / ns.max(1);
    let t0 = time::now_ns();
    for i in 0..nreq {
        d.write(i * per, data).map_err(|_| "write failed")?;
    }
    d.flush().map_err(|_| "flush failed")?;
    let w = time::now_ns() - t0;
    println!(
        "DEVBENCH disk-seq-write: {} MB/s ({} KiB in {} ms, {} KiB requests)",
        mb_s(nreq * chunk as u64, w),
        nreq * chunk as u64 / 1024,
        w / 1_000_000,
        chunk / 1024
    );
    let t0 = time::now_ns();
    for i in 0..nreq {
        d.read(i * per, data).map_err(|_| "read failed")?;
    }
    let r = time::now_ns() - t0;
    println!(
        "DEVBENCH disk-seq-read: {} MB/s ({} KiB in {} ms, {} KiB requests)",
        mb_s(nreq * chunk as u64, r),
        nreq * chunk as u64 / 1024,
        r / 1_000_000,
        chunk / 1024
    );
    let page = &mut buf(&b)[..4096];
    let pages = area / 4096;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for (name, write) in [("read", false), ("write", true)] {
        let n = 2000u64;
        let t0 = time::now_ns();
        for _ in 0..n {
            let at = (next_rand(&mut seed) % pages) * 8;
            let r = if write { d.write(at, page) } else { d.read(at, page) };
            r.map_err(|_| "random request failed")?;
        }
        let ns = time::now_ns() - t0;
        println!(
            "DEVBENCH disk-rand-{name}-4k: {} IOPS ({n} requests in {} ms)",
            n * 1_000_000_000 / ns.max(1),
            ns / 1_000_000
        );
    }
    dma::free(b);
    Ok(())
}
