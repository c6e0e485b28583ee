//! TCP over the vif (netfront + smoltcp): `tcp-echo` serves an echo port, `tcp-client`
//! connects to one (another domU through dom0's bridge, or the host through QEMU's gateway),
//! measures round trips and bulk throughput and checks every byte that comes back.
//!
//! Parameters: `ip=a.b.c.d` (this guest, /24; default 10.0.2.15), `gw=` (default 10.0.2.2,
//! QEMU's user-network gateway), `vif=<n>` (default 0), `csum_offload=0|1` (default 1: the
//! back end fills TCP checksums); `tcp-echo`: `port=` (default 7), `conns=` (connections to
//! serve before stopping, default 1), `seconds=` (give up after, default 60); `tcp-client`:
//! `server=a.b.c.d:port`, `bytes=` (bulk transfer, default 65536), `rtts=` (round trips,
//! default 20), `seconds=` (default 60).

use alloc::string::ToString;
use alloc::vec::Vec;

use pv_guest::frontends::net::Netfront;
use pv_guest::frontends::net::smol::NetDevice;
use pv_guest::{cmdline_param, cmdline_value, events, println, time, xenstore};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

fn now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((time::now_ns() / 1000) as i64)
}

fn ipv4(s: &str) -> Option<Ipv4Address> {
    s.parse().ok()
}

/// This guest's network: the vif, smoltcp's interface and sockets.
struct Stack {
    dev: NetDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
}

impl Stack {
    fn up(line: &str, who: &str) -> Option<Stack> {
        let dom = xenstore::with(|xs| pv_guest::xenbus::read_u64(xs, "domid"))
            .flatten()
            .unwrap_or(0) as u16;
        let devid = cmdline_param(line, "vif", 0u32);
        let nf = match xenstore::with(|xs| Netfront::connect(xs, dom, devid)) {
            Some(Ok(nf)) => nf,
            Some(Err(e)) => {
                println!("RESULT {who}: FAIL vif {devid}: {e}");
                return None;
            }
            None => {
                println!("RESULT {who}: FAIL no XenStore");
                return None;
            }
        };
        let ip = ipv4(cmdline_value(line, "ip").unwrap_or("10.0.2.15"))?;
        let gw = ipv4(cmdline_value(line, "gw").unwrap_or("10.0.2.2"))?;
        let m = nf.mac;
        println!(
            "{who}: vif {devid} up: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, ip {ip}/24, gateway {gw}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let mut dev =
            NetDevice { nf, csum_offload: cmdline_param(line, "csum_offload", 1u32) != 0 };
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(m)));
        cfg.random_seed = time::now_ns() ^ u64::from(dom) << 48;
        let mut iface = Interface::new(cfg, &mut dev, now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(gw);
        Some(Stack { dev, iface, sockets: SocketSet::new(Vec::new()) })
    }

    fn add_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(alloc::vec![0u8; 32 * 1024]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0u8; 32 * 1024]);
        let mut s = tcp::Socket::new(rx, tx);
        // Round trips are measured, not batched: no Nagle, no delayed acknowledgements.
        s.set_nagle_enabled(false);
        s.set_ack_delay(None);
        self.sockets.add(s)
    }

    fn sock(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Lets smoltcp work, then sleeps until the vif's event or smoltcp's next deadline (at
    /// most `max_ns`).
    fn step(&mut self, max_ns: u64) {
        self.iface.poll(now(), &mut self.dev, &mut self.sockets);
        let delay_ns = self
            .iface
            .poll_delay(now(), &self.sockets)
            .map_or(max_ns, |d| d.total_micros() * 1000)
            .min(max_ns);
        if delay_ns == 0 || self.dev.nf.arm() {
            return;
        }
        let _ = hypercall_abi::guest::set_timer_op(time::now_ns() + delay_ns);
        events::wait();
    }
}

/// `scenario=tcp-echo`.
pub fn echo(line: &str) {
    let Some(mut st) = Stack::up(line, "tcp-echo") else { return };
    let port = cmdline_param(line, "port", 7u16);
    let conns = cmdline_param(line, "conns", 1u64);
    let deadline = time::now_ns() + cmdline_param(line, "seconds", 60u64) * 1_000_000_000;
    let handles: Vec<SocketHandle> = (0..4).map(|_| st.add_socket()).collect();
    for &h in &handles {
        let _ = st.sock(h).listen(port);
    }
    println!("tcp-echo: listening on port {port}");
    let mut active = [false; 4];
    let (mut done, mut bytes) = (0u64, 0u64);
    let mut buf = alloc::vec![0u8; 4096];
    while done < conns && time::now_ns() < deadline {
        st.step(10_000_000);
        for (i, &h) in handles.iter().enumerate() {
            let s = st.sock(h);
            if s.is_active() {
                active[i] = true;
            }
            while s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(buf.len());
                let n = s.recv_slice(&mut buf[..room]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let _ = s.send_slice(&buf[..n]);
                bytes += n as u64;
            }
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
            }
            if active[i] && !s.is_active() {
                active[i] = false;
                done += 1;
                println!("tcp-echo: connection {done} closed ({bytes} bytes echoed so far)");
                let _ = s.listen(port);
            }
        }
    }
    let stats = st.dev.nf.stats;
    if done >= conns {
        println!(
            "RESULT tcp-echo: ok {done} connections, {bytes} bytes echoed (vif: {} frames sent, {} received)",
            stats.tx, stats.rx
        );
    } else {
        println!("RESULT tcp-echo: FAIL {done} of {conns} connections in time ({bytes} bytes)");
    }
}

/// `scenario=tcp-client`.
pub fn client(line: &str) {
    let Some(mut st) = Stack::up(line, "tcp-client") else { return };
    let Some((addr, port)) = cmdline_value(line, "server")
        .and_then(|s| s.split_once(':'))
        .and_then(|(a, p)| Some((ipv4(a)?, p.parse::<u16>().ok()?)))
    else {
        println!("RESULT tcp-client: FAIL no server=a.b.c.d:port");
        return;
    };
    let total = cmdline_param(line, "bytes", 65536usize);
    let rtts = cmdline_param(line, "rtts", 20usize);
    let deadline = time::now_ns() + cmdline_param(line, "seconds", 60u64) * 1_000_000_000;
    let h = st.add_socket();
    // Connect, again while the server is not up yet (refused: the socket closes).
    let mut tries = 0;
    while !st.sock(h).may_send() {
        if time::now_ns() > deadline {
            println!("RESULT tcp-client: FAIL no connection to {addr}:{port} in {tries} tries");
            return;
        }
        if !st.sock(h).is_open() {
            tries += 1;
            let local = 49152 + (time::now_ns() / 1000 % 10000) as u16;
            let cx = st.iface.context();
            let r = st.sockets.get_mut::<tcp::Socket>(h).connect(
                cx,
                (IpAddress::Ipv4(addr), port),
                local,
            );
            if r.is_err() {
                time::sleep_ns(200_000_000);
            }
        }
        st.step(50_000_000);
        if !st.sock(h).is_open() {
            time::sleep_ns(200_000_000);
        }
    }
    println!("tcp-client: connected to {addr}:{port} after {tries} tries");
    // Round trips: 32 bytes out, the same 32 back.
    let mut samples = Vec::new();
    let mut back = alloc::vec![0u8; 4096];
    for i in 0..rtts {
        let msg: Vec<u8> = (0..32u8).map(|b| b ^ i as u8).collect();
        let t0 = time::now_ns();
        let _ = st.sock(h).send_slice(&msg);
        let mut got = Vec::new();
        while got.len() < msg.len() && time::now_ns() < deadline && st.sock(h).may_recv() {
            st.step(10_000_000);
            if let Ok(n) = st.sock(h).recv_slice(&mut back) {
                got.extend_from_slice(&back[..n]);
            }
        }
        if got != msg {
            println!(
                "RESULT tcp-client: FAIL round trip {i}: {} bytes back, not the 32 sent",
                got.len()
            );
            return;
        }
        samples.push(time::now_ns() - t0);
    }
    samples.sort_unstable();
    let rtt_us = samples.get(samples.len() / 2).copied().unwrap_or(0) / 1000;
    // Bulk: `total` bytes of a pattern out, every byte checked as it comes back.
    let pattern = |i: usize| (i % 251) as u8;
    let (mut sent, mut recvd) = (0usize, 0usize);
    let t0 = time::now_ns();
    let mut chunk = alloc::vec![0u8; 4096];
    while recvd < total && time::now_ns() < deadline {
        let s = st.sock(h);
        if sent < total && s.can_send() {
            let n = (total - sent).min(chunk.len()).min(s.send_capacity() - s.send_queue());
            for (k, c) in chunk[..n].iter_mut().enumerate() {
                *c = pattern(sent + k);
            }
            sent += s.send_slice(&chunk[..n]).unwrap_or(0);
        }
        if let Ok(n) = st.sock(h).recv_slice(&mut back) {
            if let Some(k) = (0..n).find(|&k| back[k] != pattern(recvd + k)) {
                println!("RESULT tcp-client: FAIL byte {} came back corrupted", recvd + k);
                return;
            }
            recvd += n;
        }
        if !st.sock(h).may_recv() {
            break;
        }
        st.step(10_000_000);
    }
    let ns = (time::now_ns() - t0).max(1);
    st.sock(h).close();
    let close_by = time::now_ns() + 2_000_000_000;
    while st.sock(h).is_open() && time::now_ns() < close_by {
        st.step(10_000_000);
    }
    if recvd < total {
        println!("RESULT tcp-client: FAIL {recvd} of {total} bytes echoed in time");
        return;
    }
    let kib_s = (total as u64) * 1_000_000_000 / ns / 1024;
    println!("BENCH tcp_rtt_us {rtt_us}");
    println!("BENCH tcp_echo_kib_s {kib_s}");
    println!(
        "RESULT tcp-client: ok {total} bytes echoed intact in {} ms ({kib_s} KiB/s each way), rtt median {rtt_us} us over {rtts}",
        ns / 1_000_000
    );
}

/// `scenario=net-hostile mode=bad-gref|past-ring`: connects its vif honestly, then breaks the
/// transmit ring by hand (a request naming a grant it never made, or `req_prod` a thousand
/// slots past what exists), tells the back end, and reports whether the back end closed the
/// vif (`RESULT net-hostile: backend closed`).
pub fn hostile(line: &str) {
    use hypercall_abi::io::netif::NetifTxRequest;
    use hypercall_abi::io::ring::{HEADER_SIZE, REQ_PROD};
    use pv_guest::xenbus::{XenbusState, wait_state};
    use zerocopy::IntoBytes;

    let Some(st) = Stack::up(line, "net-hostile") else { return };
    let nf = &st.dev.nf;
    let page = nf.tx_page();
    let prod = page.u32_at(REQ_PROD).load(core::sync::atomic::Ordering::SeqCst);
    let mode = cmdline_value(line, "mode").unwrap_or("bad-gref");
    match mode {
        "bad-gref" => {
            let req = NetifTxRequest {
                gref: hypercall_abi::GrantRef(480),
                offset: 0,
                flags: 0,
                id: 0,
                size: 60,
            };
            page.write(HEADER_SIZE + (prod as usize % 256) * 12, req.as_bytes());
            page.u32_at(REQ_PROD).store(prod + 1, core::sync::atomic::Ordering::SeqCst);
        }
        _ => page.u32_at(REQ_PROD).store(prod + 1000, core::sync::atomic::Ordering::SeqCst),
    }
    let _ = events::send(nf.port());
    println!("net-hostile: {mode} sent");
    let be = nf.backend_dir().to_string();
    let s = xenstore::with(|xs| wait_state(xs, &be, |s| s >= XenbusState::Closing, 10_000_000_000));
    if s.is_some_and(|s| s >= XenbusState::Closing) {
        println!("RESULT net-hostile: backend closed the vif after {mode}");
    } else {
        println!("RESULT net-hostile: FAIL backend state {s:?} after {mode}");
    }
}
