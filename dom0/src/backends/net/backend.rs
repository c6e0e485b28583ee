//! netback's life in dom0: every vif's XenStore nodes, its xenbus handshake, and each round's
//! work, which moves frames between the vifs, the bridge and the uplink NIC.
//!
//! A vif is made when the toolstack creates a guest whose configuration lists one
//! (`vif = ['mac=...']`): the frontend's `device/vif/<n>` and the back end's
//! `backend/vif/<dom>/<n>` with `mac`, `handle` and the features offered (`feature-rx-copy`
//! only: no flipping, no scatter-gather, no segmentation offload, one queue, one event
//! channel), then InitWait. A frontend that published `tx-ring-ref`, `rx-ring-ref`,
//! `event-channel` and `request-rx-copy=1` and went Initialised (or straight to Connected, as
//! Linux's netfront does) gets its rings mapped, its channel bound and the back end Connected;
//! when it closes, the back end lets go and waits again (InitWait). A frontend that breaks the
//! protocol (`vif::Fatal`), storms dom0 with events that move nothing, or sends from a MAC
//! not its own more than a few times is disconnected with one log line: the back end goes
//! Closing and holds nothing until the frontend starts over (the shared `backends::xenbus`
//! half decides each step); after [`MAX_STRIKES`] such closes the vif stays Closed for good.
//!
//! Each round: take up to [`TX_BUDGET`] packets from each vif and [`UPLINK_BUDGET`] frames
//! from the NIC, let the bridge say where each goes, queue them (or send them on the NIC),
//! then give each vif up to [`RX_BUDGET`] queued frames.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::io::netif::*;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::grant::{self, Mapping};
use pv_guest::memory::shared;
use pv_guest::xenbus::{self, XenbusState};
use pv_guest::{events, println, time};
use ring_buffers::{BackRing, Notify};

use super::bridge::{Bridge, Forward, Port};
use super::vif::{Frame, GrantIo, Segment, VifRings};
use crate::backends::xenbus::{DeviceNodes, Step, step};
use crate::drivers::iobuf::{Direction, IoBuf};
use crate::drivers::virtio::net::Nic;
use crate::toolstack::vif::{VifSpec, format_mac};
use crate::xenstored::XenStore;
use crate::xenstored::local::LocalStore;

/// Pages of the copy buffer: a round's packets of one vif at most (64 full frames).
const COPY_PAGES: usize = 32;
/// Packets taken from one vif per round.
pub const TX_BUDGET: usize = 64;
/// Frames given to one vif per round.
pub const RX_BUDGET: usize = 64;
/// Frames held for the NIC while its queue is full; past this, new ones are dropped.
const UPLINK_QUEUE: usize = 256;
/// Frames taken from the uplink NIC per round.
pub const UPLINK_BUDGET: usize = 64;
/// Closes for cause after which a vif is not offered again (as blkback's vbds): a guest that
/// restarts into the same violation cannot make dom0 print without end.
pub const MAX_STRIKES: u32 = 3;
/// How often a connected vif's frontend state is looked at (a XenStore read per vif per round
/// would cost every packet; a frontend that closes can wait this long).
const STATE_LOOK_NS: u64 = 20_000_000;
/// Wake-ups by a vif's event in one second that moved no packet, counted as an event storm
/// (as blkback and the console count them).
const STORM_EVENTS: u32 = 500;
/// Frames from a MAC not the vif's own it may send (each dropped) before it is disconnected.
const SPOOF_LIMIT: u64 = 16;

/// Grant copies, a round's worth at once, through dom0's copy buffer (`drivers::iobuf`).
struct CopyIo<'b> {
    dom: DomId,
    buf: &'b mut IoBuf,
}

impl CopyIo<'_> {
    /// After a batch failed: the first segment whose copy alone fails, and its status (a
    /// hostile frontend's case only, so the extra copies cost nothing in the honest path).
    fn culprit(&mut self, segs: &[Segment], dir: Direction, status: i16) -> (GrantRef, i16) {
        for s in segs {
            if let Err(st) = self.buf.copy(self.dom, core::slice::from_ref(s), dir) {
                return (s.gref, st);
            }
        }
        (segs.first().map_or(GrantRef(0), |s| s.gref), status)
    }
}

impl GrantIo for CopyIo<'_> {
    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn copy_in(&mut self, segs: &[Segment], dst: &mut [u8]) -> Result<(), (GrantRef, i16)> {
        if let Err(st) = self.buf.copy(self.dom, segs, Direction::FromGuest) {
            return Err(self.culprit(segs, Direction::FromGuest, st));
        }
        dst.copy_from_slice(self.buf.bytes(dst.len()));
        Ok(())
    }

    fn copy_out(&mut self, segs: &[Segment], src: &[u8]) -> Result<(), (GrantRef, i16)> {
        self.buf.bytes_mut(src.len()).copy_from_slice(src);
        match self.buf.copy(self.dom, segs, Direction::ToGuest) {
            Ok(()) => Ok(()),
            Err(st) => Err(self.culprit(segs, Direction::ToGuest, st)),
        }
    }
}

/// A connected vif's rings.
struct Conn {
    rings: VifRings<'static>,
    tx_map: Mapping,
    rx_map: Mapping,
    port: EvtchnPort,
    /// Packets moved either way this round (storm detection).
    moved: u64,
    /// Start of the current one-second window, and the wake-ups in it that moved nothing.
    window_start: u64,
    idle_events: u32,
}

impl Conn {
    fn close(self) {
        let Conn { rings, tx_map, rx_map, port, .. } = self;
        // The rings go before the pages under them.
        drop(rings);
        events::off(port);
        let _ = hypercall_abi::guest::evtchn_close(port);
        let _ = grant::unmap(tx_map);
        let _ = grant::unmap(rx_map);
    }
}

/// One vif.
struct Vif {
    dom: DomId,
    /// `vif<dom>.<devid>`, for logs.
    label: String,
    nodes: DeviceNodes,
    mac: [u8; 6],
    conn: Option<Conn>,
    /// The state last written to the back end's node.
    be_state: XenbusState,
    spoofed: u64,
    /// Closes for cause so far.
    strikes: u32,
    /// When the frontend's state was last read.
    looked_at: u64,
}

/// Every vif, and the bridge joining them to the uplink.
pub struct NetBackend {
    vifs: BTreeMap<(u16, u32), Vif>,
    bridge: Bridge,
    /// The buffer grant copies go through (dom0 serves one vif at a time), made when the
    /// first vif is.
    buf: Option<IoBuf>,
    /// Whether a failure to make it was reported (once).
    no_buf_said: bool,
    has_uplink: bool,
    /// Frames for the NIC while its queue is full (at most [`UPLINK_QUEUE`]), sent first
    /// next round: a burst from a guest is held as a switch port's queue would hold it.
    to_uplink: VecDeque<Vec<u8>>,
}

impl Default for NetBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// A decimal number at `dir/key` of the frontend.
fn read_num(lsvc: &mut LocalStore<'_>, dir: &str, key: &str) -> Option<u64> {
    xenbus::read_u64(lsvc, &format!("{dir}/{key}"))
}

impl NetBackend {
    pub fn new() -> Self {
        NetBackend {
            vifs: BTreeMap::new(),
            bridge: Bridge::default(),
            buf: None,
            no_buf_said: false,
            has_uplink: false,
            to_uplink: VecDeque::new(),
        }
    }

    /// Joins the uplink NIC to the bridge (once dom0 found one).
    pub fn attach_uplink(&mut self) {
        self.has_uplink = true;
        self.bridge.add_port(Port::Uplink);
    }

    /// Creates vif `devid` of `dom` (named `name`) from its configuration entry: both ends'
    /// XenStore nodes with their permissions, the back end in InitWait.
    pub fn add(&mut self, xs: &mut XenStore, dom: DomId, name: &str, devid: u32, spec: &VifSpec) {
        let mac = spec.mac_for(name, devid);
        let m = format_mac(&mac);
        let id = format!("{devid}");
        let fe_keys = [("handle", id.clone()), ("mac", m.clone())];
        let mut be_keys = alloc::vec![
            ("handle", id),
            ("mac", m.clone()),
            ("online", "1".into()),
            ("bridge", "xenbr0".into()),
            ("feature-rx-copy", "1".into()),
            ("feature-rx-flip", "0".into()),
            ("feature-sg", "0".into()),
            ("feature-gso-tcpv4", "0".into()),
            ("feature-gso-tcpv6", "0".into()),
        ];
        if let Some(ip) = &spec.ip {
            be_keys.push(("ip", ip.clone()));
        }
        let nodes = DeviceNodes::create(xs, dom, "vif", devid, &fe_keys, &be_keys);
        let label = format!("vif{}.{devid}", dom.0);
        println!("dom0: {label} ({name}): mac {m}, on xenbr0");
        self.vifs.insert(
            (dom.0, devid),
            Vif {
                dom,
                label,
                nodes,
                mac,
                conn: None,
                be_state: XenbusState::InitWait,
                spoofed: 0,
                strikes: 0,
                looked_at: 0,
            },
        );
    }

    /// One round: the vifs' xenbus states, their transmitted packets and the uplink's frames
    /// through the bridge, then the frames queued for each vif. True if a budget ran out with
    /// work left (another round should follow before dom0 sleeps).
    pub fn round(
        &mut self,
        lsvc: &mut LocalStore<'_>,
        uplink: Option<&mut Nic>,
        fired: &[EvtchnPort],
    ) -> bool {
        if self.buf.is_none() && !self.vifs.is_empty() {
            self.buf = IoBuf::new(COPY_PAGES);
            if self.buf.is_none() && !self.no_buf_said {
                self.no_buf_said = true;
                println!("dom0: netback: no copy buffer ({COPY_PAGES} pages): vifs not served");
            }
        }
        let Some(mut buf) = self.buf.take() else { return false };
        let more = self.round_with(lsvc, uplink, fired, &mut buf);
        self.buf = Some(buf);
        more
    }

    fn round_with(
        &mut self,
        lsvc: &mut LocalStore<'_>,
        mut uplink: Option<&mut Nic>,
        fired: &[EvtchnPort],
        buf: &mut IoBuf,
    ) -> bool {
        let mut more = false;
        let now = time::now_ns();
        let keys: Vec<(u16, u32)> = self.vifs.keys().copied().collect();
        for k in &keys {
            self.follow_frontend(lsvc, *k, now);
        }
        let mut frames: Vec<(Port, Frame)> = Vec::new();
        for k in &keys {
            let mut io = CopyIo { dom: DomId(k.0), buf: &mut *buf };
            let Some(v) = self.vifs.get_mut(k) else { continue };
            let Some(c) = v.conn.as_mut() else { continue };
            let mut out = Vec::new();
            let before = c.rings.stats.tx_packets + c.rings.stats.tx_errors;
            let r = c.rings.transmit(&mut io, TX_BUDGET, &mut out);
            c.moved = c.rings.stats.tx_packets + c.rings.stats.tx_errors - before;
            more |= c.moved >= TX_BUDGET as u64;
            if let Ok(Notify::Yes) = r {
                let _ = events::send(c.port);
            }
            for f in out {
                if f.data[6..12] == v.mac {
                    frames.push((Port::Vif(k.0, k.1), f));
                } else {
                    v.spoofed += 1;
                }
            }
            let why = match r {
                Err(e) => Some(format!("{e}")),
                Ok(_) if v.spoofed > SPOOF_LIMIT => {
                    Some(format!("{} frames from a MAC not its own", v.spoofed))
                }
                Ok(_) => None,
            };
            if let Some(why) = why {
                self.kill(lsvc, *k, &why);
            }
        }
        if let Some(nic) = uplink.as_deref_mut() {
            while !self.to_uplink.is_empty() && nic.can_send() {
                if let Some(f) = self.to_uplink.pop_front() {
                    let _ = nic.send(&f);
                }
            }
            for i in 0..UPLINK_BUDGET {
                let Some(data) = nic.recv() else { break };
                frames.push((Port::Uplink, Frame { data, csum_filled: false }));
                more |= i + 1 == UPLINK_BUDGET;
            }
        }
        for (from, f) in frames {
            match self.bridge.forward(from, &f.data, now) {
                Forward::One(p) => self.deliver(p, f, uplink.as_deref_mut()),
                Forward::Flood(ports) => {
                    for p in ports {
                        self.deliver(p, f.clone(), uplink.as_deref_mut());
                    }
                }
                Forward::Drop => {}
            }
        }
        for k in &keys {
            let mut io = CopyIo { dom: DomId(k.0), buf: &mut *buf };
            let Some(c) = self.vifs.get_mut(k).and_then(|v| v.conn.as_mut()) else { continue };
            let before = c.rings.stats.rx_packets;
            let r = c.rings.receive(&mut io, RX_BUDGET);
            let received = c.rings.stats.rx_packets - before;
            more |= received >= RX_BUDGET as u64 && c.rings.rx_queued() > 0;
            c.moved += received;
            let why = match r {
                Ok(Notify::Yes) => {
                    let _ = events::send(c.port);
                    None
                }
                Ok(Notify::No) => None,
                Err(e) => Some(format!("{e}")),
            };
            // Storm: the frontend's event fired with nothing moved, again and again.
            if now.saturating_sub(c.window_start) > 1_000_000_000 {
                c.window_start = now;
                c.idle_events = 0;
            }
            if fired.contains(&c.port) && c.moved == 0 {
                c.idle_events += 1;
            }
            let why = why.or_else(|| {
                (c.idle_events > STORM_EVENTS).then(|| {
                    format!(
                        "event storm ({} events in under a second, nothing moved)",
                        c.idle_events
                    )
                })
            });
            if let Some(why) = why {
                self.kill(lsvc, *k, &why);
            }
        }
        self.bridge.age(now);
        more
    }

    fn deliver(&mut self, to: Port, f: Frame, uplink: Option<&mut Nic>) {
        match to {
            Port::Uplink => {
                let Some(nic) = uplink else { return };
                if self.to_uplink.is_empty() && nic.can_send() {
                    let _ = nic.send(&f.data);
                } else if self.to_uplink.len() < UPLINK_QUEUE {
                    self.to_uplink.push_back(f.data);
                }
                // Past the queue the frame is dropped, as a switch port drops it: TCP sends
                // it again.
            }
            Port::Vif(d, n) => {
                if let Some(c) = self.vifs.get_mut(&(d, n)).and_then(|v| v.conn.as_mut()) {
                    c.rings.queue_rx(f);
                }
            }
        }
    }

    fn set_state(lsvc: &mut LocalStore<'_>, v: &mut Vif, s: XenbusState) {
        if v.be_state != s {
            v.be_state = s;
            let _ = xenbus::set_state(lsvc, &v.nodes.be_dir, s);
        }
    }

    /// Follows vif `k`'s frontend (`backends::xenbus::step`): connects when it published its
    /// rings, lets go when it closes or restarts.
    fn follow_frontend(&mut self, lsvc: &mut LocalStore<'_>, k: (u16, u32), now: u64) {
        let Some(v) = self.vifs.get_mut(&k) else { return };
        if v.strikes >= MAX_STRIKES {
            return;
        }
        let fe = if v.conn.is_some() && now.saturating_sub(v.looked_at) < STATE_LOOK_NS {
            XenbusState::Connected
        } else {
            v.looked_at = now;
            xenbus::state(lsvc, &v.nodes.fe_dir)
        };
        match step(v.be_state, fe, v.conn.is_some()) {
            Step::Stay => {}
            Step::Connect => match Self::connect(lsvc, v) {
                Ok(c) => {
                    println!(
                        "dom0: {}: connected (mac {}, event channel {})",
                        v.label,
                        format_mac(&v.mac),
                        c.port.0
                    );
                    v.conn = Some(c);
                    v.spoofed = 0;
                    Self::set_state(lsvc, v, XenbusState::Connected);
                    self.bridge.add_port(Port::Vif(k.0, k.1));
                }
                Err(why) => {
                    let why = format!("cannot connect: {why}");
                    self.kill(lsvc, k, &why);
                }
            },
            Step::Disconnect(s) => {
                if let Some(c) = v.conn.take() {
                    c.close();
                }
                println!("dom0: {}: frontend closed", v.label);
                Self::set_state(lsvc, v, s);
                self.bridge.remove_port(Port::Vif(k.0, k.1));
            }
            Step::Switch(s) => Self::set_state(lsvc, v, s),
        }
    }

    /// Maps the rings the frontend published and binds its event channel.
    fn connect(lsvc: &mut LocalStore<'_>, v: &Vif) -> Result<Conn, String> {
        let fe = &v.nodes.fe_dir;
        let tx_ref = read_num(lsvc, fe, "tx-ring-ref").ok_or("no tx-ring-ref")?;
        let rx_ref = read_num(lsvc, fe, "rx-ring-ref").ok_or("no rx-ring-ref")?;
        let evtchn = read_num(lsvc, fe, "event-channel")
            .ok_or("no event-channel (split channels are not offered)")?;
        if read_num(lsvc, fe, "request-rx-copy") != Some(1) {
            return Err("request-rx-copy is not 1 (only receive by copy is offered)".into());
        }
        let (tx_ref, rx_ref) = (
            u32::try_from(tx_ref).map_err(|_| "tx-ring-ref out of range")?,
            u32::try_from(rx_ref).map_err(|_| "rx-ring-ref out of range")?,
        );
        let tx_map = grant::map(v.dom, GrantRef(tx_ref), false)
            .map_err(|e| format!("tx ring grant {tx_ref}: {e}"))?;
        let rx_map = match grant::map(v.dom, GrantRef(rx_ref), false) {
            Ok(m) => m,
            Err(e) => {
                let _ = grant::unmap(tx_map);
                return Err(format!("rx ring grant {rx_ref}: {e}"));
            }
        };
        let port = match u32::try_from(evtchn)
            .map_err(|_| ())
            .and_then(|p| events::bind_interdomain(v.dom, EvtchnPort(p), |_| {}).map_err(|_| ()))
        {
            Ok(p) => p,
            Err(()) => {
                let _ = grant::unmap(tx_map);
                let _ = grant::unmap(rx_map);
                return Err(format!("cannot bind event channel {evtchn}"));
            }
        };
        events::on_queue(port);
        let tx = shared::request_ring::<NetifTxRequest, NetifTxResponse>(tx_map.page());
        let rx = shared::request_ring::<NetifRxRequest, NetifRxResponse>(rx_map.page());
        let rings = VifRings::new(BackRing::new(tx), BackRing::new(rx));
        Ok(Conn { rings, tx_map, rx_map, port, moved: 0, window_start: 0, idle_events: 0 })
    }

    /// Disconnects vif `k` for `why` (one line): the back end goes Closing and holds nothing
    /// until the frontend starts over; after [`MAX_STRIKES`], Closed for good.
    fn kill(&mut self, lsvc: &mut LocalStore<'_>, k: (u16, u32), why: &str) {
        let Some(v) = self.vifs.get_mut(&k) else { return };
        if let Some(c) = v.conn.take() {
            c.close();
        }
        v.strikes += 1;
        if v.strikes >= MAX_STRIKES {
            println!(
                "dom0: {}: disconnected: {why}; closed for good after {} violations",
                v.label, v.strikes
            );
            Self::set_state(lsvc, v, XenbusState::Closed);
        } else {
            println!("dom0: {}: disconnected: {why}", v.label);
            Self::set_state(lsvc, v, XenbusState::Closing);
        }
        self.bridge.remove_port(Port::Vif(k.0, k.1));
    }

    /// `dom` is gone: let go of its vifs, printing what they carried, and remove their nodes.
    pub fn disconnect(&mut self, dom: DomId, xs: &mut XenStore) {
        let keys: Vec<(u16, u32)> = self.vifs.keys().filter(|k| k.0 == dom.0).copied().collect();
        for k in keys {
            if let Some(mut v) = self.vifs.remove(&k) {
                if let Some(c) = v.conn.take() {
                    let s = c.rings.stats;
                    println!(
                        "dom0: {}: gone after {} packets sent ({} refused), {} received ({} dropped)",
                        v.label, s.tx_packets, s.tx_errors, s.rx_packets, s.rx_dropped
                    );
                    c.close();
                }
                v.nodes.remove(xs);
                self.bridge.remove_port(Port::Vif(k.0, k.1));
            }
        }
    }

    /// Whether the uplink was joined.
    pub fn has_uplink(&self) -> bool {
        self.has_uplink
    }
}
