//! TCP/IP from the `smoltcp` crate over any link a kernel has (a domU's netfront, dom0's
//! virtio NIC): the interface (a static IPv4 address on a /24, a default gateway), TCP sockets
//! without Nagle or delayed acknowledgements (round trips are measured, not batched), and the
//! two programs the system tests and benchmarks run (a link gives frames: [`Link`]): an echo server and an echo client that
//! measures round trips and bulk throughput and checks every byte that comes back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::{println, time};

/// A link of Ethernet frames (at most 1514 bytes) the stack runs on.
pub trait Link {
    /// The next frame received, if any.
    fn recv_frame(&mut self) -> Option<Vec<u8>>;
    /// Whether a frame can be sent now.
    fn can_send(&mut self) -> bool;
    /// Sends a frame (after `can_send`; one refused anyway is lost as on a wire).
    fn send_frame(&mut self, frame: &[u8]);
    /// Blocks until a frame may have arrived or `deadline_ns` passes.
    fn wait_until(&mut self, deadline_ns: u64);
    /// Whether the link fills TCP and UDP checksums of what is sent (checksum offload).
    fn fills_checksums(&self) -> bool {
        false
    }
    /// Frames that may be sent back to back.
    fn burst(&self) -> usize;
}

/// smoltcp's device over a [`Link`]: received frames are handed over as they came, a frame
/// to send is built in a buffer of its own and given to the link.
pub struct LinkDevice<L>(pub L);

/// A received frame.
pub struct Rx(Vec<u8>);

/// Room to send one frame.
pub struct Tx<'a, L>(&'a mut L);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl<L: Link> phy::TxToken for Tx<'_, L> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = alloc::vec![0u8; len];
        let r = f(&mut buf);
        self.0.send_frame(&buf);
        r
    }
}

impl<L: Link> Device for LinkDevice<L> {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, L>
    where
        Self: 'a;

    fn receive(&mut self, _now: smoltcp::time::Instant) -> Option<(Rx, Tx<'_, L>)> {
        let f = self.0.recv_frame()?;
        Some((Rx(f), Tx(&mut self.0)))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<Tx<'_, L>> {
        if self.0.can_send() { Some(Tx(&mut self.0)) } else { None }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(self.0.burst());
        if self.0.fills_checksums() {
            // Left blank for the link; what comes in is still verified.
            caps.checksum.tcp = Checksum::Rx;
            caps.checksum.udp = Checksum::Rx;
        }
        caps
    }
}

fn now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// An interface and its sockets over a link.
pub struct Stack<L: Link> {
    pub dev: LinkDevice<L>,
    iface: Interface,
    sockets: SocketSet<'static>,
}

impl<L: Link> Stack<L> {
    /// `ip`/24 with `gw` as the default route, on `link` with MAC `mac`.
    pub fn new(link: L, mac: [u8; 6], ip: Ipv4Address, gw: Ipv4Address) -> Self {
        let mut dev = LinkDevice(link);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // Initial sequence numbers: this boot's clock and the address tell stacks apart.
        cfg.random_seed = time::now_ns() ^ (u64::from(u32::from(ip)) << 32);
        let mut iface = Interface::new(cfg, &mut dev, now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(gw);
        Stack { dev, iface, sockets: SocketSet::new(Vec::new()) }
    }

    fn add_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(alloc::vec![0u8; 32 * 1024]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0u8; 32 * 1024]);
        let mut s = tcp::Socket::new(rx, tx);
        s.set_nagle_enabled(false);
        s.set_ack_delay(None);
        self.sockets.add(s)
    }

    fn sock(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Lets smoltcp work, then sleeps until the link's next frame or smoltcp's next deadline
    /// (at most `max_ns`).
    pub fn step(&mut self, max_ns: u64) {
        self.iface.poll(now(), &mut self.dev, &mut self.sockets);
        let delay_ns = self
            .iface
            .poll_delay(now(), &self.sockets)
            .map_or(max_ns, |d| d.total_micros() * 1000)
            .min(max_ns);
        if delay_ns > 0 {
            self.dev.0.wait_until(time::now_ns() + delay_ns);
        }
    }

    /// Echoes on `port` until `conns` connections have come and gone (four at a time) or
    /// `deadline_ns`; (connections served, bytes echoed).
    pub fn echo_server(&mut self, port: u16, conns: u64, deadline_ns: u64) -> (u64, u64) {
        let handles: Vec<SocketHandle> = (0..4).map(|_| self.add_socket()).collect();
        for &h in &handles {
            let _ = self.sock(h).listen(port);
        }
        println!("tcp-echo: listening on port {port}");
        let mut active = [false; 4];
        let (mut done, mut bytes) = (0u64, 0u64);
        let mut buf = alloc::vec![0u8; 4096];
        while done < conns && time::now_ns() < deadline_ns {
            self.step(10_000_000);
            for (i, &h) in handles.iter().enumerate() {
                let s = self.sock(h);
                active[i] |= s.is_active();
                while s.can_recv() && s.can_send() {
                    let room = (s.send_capacity() - s.send_queue()).min(buf.len());
                    let n = s.recv_slice(&mut buf[..room]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let _ = s.send_slice(&buf[..n]);
                    bytes += n as u64;
                }
                // The peer is done and everything went back: our half closes too.
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
        (done, bytes)
    }

    /// Connects to `addr:port` (again and again while refused, until `deadline_ns`), times
    /// `rtts` round trips of 32 bytes, then sends `total` bytes of a pattern and checks every
    /// byte that comes back.
    pub fn echo_client(
        &mut self,
        addr: Ipv4Address,
        port: u16,
        total: usize,
        rtts: usize,
        deadline_ns: u64,
    ) -> Result<EchoReport, String> {
        let h = self.add_socket();
        let mut tries = 0;
        while !self.sock(h).may_send() {
            if time::now_ns() > deadline_ns {
                return Err(format!("no connection to {addr}:{port} in {tries} tries"));
            }
            if !self.sock(h).is_open() {
                tries += 1;
                let local = 49152 + (time::now_ns() / 1000 % 10000) as u16;
                let cx = self.iface.context();
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if s.connect(cx, (IpAddress::Ipv4(addr), port), local).is_err() {
                    time::sleep_ns(200_000_000);
                }
            }
            self.step(50_000_000);
            if !self.sock(h).is_open() {
                // Refused (the server is not up yet): wait a little before the next try.
                time::sleep_ns(200_000_000);
            }
        }
        println!("tcp-client: connected to {addr}:{port} after {tries} tries");
        let mut samples = Vec::new();
        let mut back = alloc::vec![0u8; 4096];
        for i in 0..rtts {
            let msg: Vec<u8> = (0..32u8).map(|b| b ^ i as u8).collect();
            let t0 = time::now_ns();
            let _ = self.sock(h).send_slice(&msg);
            let mut got = Vec::new();
            while got.len() < msg.len() && time::now_ns() < deadline_ns && self.sock(h).may_recv() {
                self.step(10_000_000);
                if let Ok(n) = self.sock(h).recv_slice(&mut back) {
                    got.extend_from_slice(&back[..n]);
                }
            }
            if got != msg {
                return Err(format!("round trip {i}: {} bytes back, not the 32 sent", got.len()));
            }
            samples.push(time::now_ns() - t0);
        }
        samples.sort_unstable();
        let rtt_us = samples.get(samples.len() / 2).copied().unwrap_or(0) / 1000;
        let pattern = |i: usize| (i % 251) as u8;
        let (mut sent, mut recvd) = (0usize, 0usize);
        let t0 = time::now_ns();
        let mut chunk = alloc::vec![0u8; 4096];
        while recvd < total && time::now_ns() < deadline_ns {
            let s = self.sock(h);
            if sent < total && s.can_send() {
                let n = (total - sent).min(chunk.len()).min(s.send_capacity() - s.send_queue());
                for (k, c) in chunk[..n].iter_mut().enumerate() {
                    *c = pattern(sent + k);
                }
                sent += s.send_slice(&chunk[..n]).unwrap_or(0);
            }
            if let Ok(n) = self.sock(h).recv_slice(&mut back) {
                if let Some(k) = (0..n).find(|&k| back[k] != pattern(recvd + k)) {
                    return Err(format!("byte {} came back corrupted", recvd + k));
                }
                recvd += n;
            }
            if !self.sock(h).may_recv() {
                break;
            }
            self.step(10_000_000);
        }
        let ns = (time::now_ns() - t0).max(1);
        self.sock(h).close();
        let close_by = time::now_ns() + 2_000_000_000;
        while self.sock(h).is_open() && time::now_ns() < close_by {
            self.step(10_000_000);
        }
        if recvd < total {
            return Err(format!("{recvd} of {total} bytes echoed in time"));
        }
        Ok(EchoReport {
            rtt_us,
            kib_s: total as u64 * 1_000_000_000 / ns / 1024,
            ms: ns / 1_000_000,
        })
    }
}

/// What the echo client measured.
#[derive(Clone, Copy, Debug)]
pub struct EchoReport {
    /// Median round trip of 32 bytes.
    pub rtt_us: u64,
    /// Bulk rate, each way.
    pub kib_s: u64,
    /// Bulk transfer time.
    pub ms: u64,
}

impl EchoReport {
    /// The `NETBENCH` lines `bench-net` reads, names prefixed with `who`.
    pub fn print(&self, who: &str) {
        println!("NETBENCH {who}_tcp_rtt_us: {}", self.rtt_us);
        println!("NETBENCH {who}_tcp_echo_kib_s: {}", self.kib_s);
    }
}
