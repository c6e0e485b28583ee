//! dom0's services, one event loop: xenstored serving every domain's XenStore ring, the console
//! back end draining every domU's console ring into dom0's output (each line prefixed with the
//! domain's name) and routing serial input to one guest, and the xenbus back end for secondary
//! consoles (`device/console/<n>`).
//!
//! Every guest is a hostile peer: a broken ring (indices out of range) or an event storm gets
//! that device disconnected with one log line, and the work done per domain per round is
//! bounded, so a flooding guest cannot stall the others.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::grant::{self, Mapping};
use pv_guest::memory::shared;
use pv_guest::xenbus::{self, XenbusState};
use pv_guest::xenstore::{Store, XsError};
use pv_guest::{events, println, time};
use ring_buffers::{ConsoleBackend, XenstoreServer};

use crate::xenstore::{Access, Perms};
use crate::xenstore::{ConnId, Quotas, XenStore, XsType, XsdSockmsg};

/// Bytes of console output taken from one guest per round (then the next guest's turn).
const CONSOLE_BUDGET: usize = 2048;
/// Rounds within one second in which a console port fired but no data moved, that count as an
/// event storm (dom0 coalesces events, so this counts wake-ups it was made to do for nothing).
const STORM_EVENTS: u32 = 500;
/// Bytes of XenStore requests taken from one guest per round.
const STORE_BUDGET: usize = 4096;

/// Longest console line kept before it is printed anyway: a guest that never sends a newline
/// cannot make dom0 hold more than this.
const MAX_LINE: usize = 200;

/// Maps `gref` of `dom` and binds to its port `remote`, with events queued for the service
/// loop; on any failure nothing is left mapped or bound.
fn connect(dom: DomId, gref: GrantRef, remote: EvtchnPort) -> Option<(Mapping, EvtchnPort)> {
    let map = grant::map(dom, gref, false).ok()?;
    match events::bind_interdomain(dom, remote, |_| {}) {
        Ok(port) => {
            events::on_queue(port);
            Some((map, port))
        }
        Err(_) => {
            let _ = grant::unmap(map);
            None
        }
    }
}

/// Undoes [`connect`].
fn disconnect(port: EvtchnPort, map: Mapping) {
    events::off(port);
    let _ = hypercall_abi::guest::evtchn_close(port);
    let _ = grant::unmap(map);
}

struct StoreConn {
    ring: XenstoreServer<'static>,
    port: EvtchnPort,
    map: Mapping,
}

impl StoreConn {
    fn connect(dom: DomId, remote: EvtchnPort) -> Option<Self> {
        let (map, port) = connect(dom, GrantRef(1), remote)?;
        Some(StoreConn { ring: shared::xenstore_ring(map.page()).server(), port, map })
    }

    fn close(self) {
        // The ring view goes with `self`; the mapping under it is released last.
        disconnect(self.port, self.map);
    }
}

struct ConsoleConn {
    ring: ConsoleBackend<'static>,
    port: EvtchnPort,
    map: Mapping,
    line: Vec<u8>,
    /// Events and bytes in the current one-second window (storm detection).
    window_start: u64,
    events: u32,
}

impl ConsoleConn {
    fn connect(dom: DomId, gref: GrantRef, remote: EvtchnPort) -> Option<Self> {
        let (map, port) = connect(dom, gref, remote)?;
        Some(ConsoleConn {
            ring: shared::console_ring(map.page()).backend(),
            port,
            map,
            line: Vec::new(),
            window_start: time::now_ns(),
            events: 0,
        })
    }

    fn close(self) {
        disconnect(self.port, self.map);
    }

    /// Takes up to [`CONSOLE_BUDGET`] bytes of output, printing each complete line (or each
    /// [`MAX_LINE`] bytes) as `[label] ...`; returns the bytes taken and the lines printed, or
    /// the ring's error. Tells the guest when it made room.
    fn drain(&mut self, label: &str) -> Result<(usize, u64), ring_buffers::RingError> {
        let mut buf = [0u8; 256];
        let (mut taken, mut lines) = (0, 0);
        let mut result = Ok(());
        while taken < CONSOLE_BUDGET {
            match self.ring.read(&mut buf) {
                Ok(t) if t.bytes > 0 => {
                    taken += t.bytes;
                    for &b in &buf[..t.bytes] {
                        if b == b'\n' || self.line.len() >= MAX_LINE {
                            flush_line(label, &self.line);
                            self.line.clear();
                            lines += 1;
                            if b == b'\n' {
                                continue;
                            }
                        }
                        if b != b'\r' {
                            self.line.push(b);
                        }
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if taken > 0 {
            // Room again: a writer waiting on a full ring may go on.
            let _ = events::send(self.port);
        }
        result.map(|()| (taken, lines))
    }
}

/// A secondary console reached through xenbus.
struct Vcons {
    fe_dir: String,
    be_dir: String,
    /// `name/id`, the prefix of its lines.
    label: String,
    conn: Option<ConsoleConn>,
    lines: u64,
}

struct Guest {
    name: String,
    store: Option<StoreConn>,
    console: Option<ConsoleConn>,
    vcons: BTreeMap<u32, Vcons>,
}

/// What dom0 was asked to do (its command line).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Give every domU a secondary console device (`device/console/1`).
    pub vcons: bool,
    /// Restart the secondary-console back end once after this many lines (0: never).
    pub vcons_restart_after: u64,
    /// Keep serving after the last domU is gone.
    pub serve: bool,
}

/// dom0's services.
pub struct Services {
    xs: XenStore,
    local: ConnId,
    local_req: u32,
    local_events: Vec<(String, String)>,
    guests: BTreeMap<u16, Guest>,
    /// The guest serial input goes to (None: dom0 itself).
    input_to: Option<u16>,
    /// The line being typed, and whole lines waiting to go to `input_to`.
    input_partial: Vec<u8>,
    input_pending: Vec<u8>,
    cfg: Config,
    restarted: bool,
}

/// The first ports of `dom` that are unbound and offered to dom0, in order: the builder
/// allocates the XenStore port first, then the console port.
fn offered_ports(dom: DomId) -> Vec<EvtchnPort> {
    use hypercall_abi::event_channel::EvtchnStatusDetail;
    (1..16)
        .map(EvtchnPort)
        .filter(|&p| {
            matches!(
                hypercall_abi::guest::evtchn_status(dom, p).map(|s| s.detail()),
                Ok(EvtchnStatusDetail::Unbound { dom: DomId(0) })
            )
        })
        .collect()
}

impl Services {
    pub fn new(cfg: Config) -> Self {
        let mut xs = XenStore::new(Quotas::default());
        let local = xs.open_local();
        Services {
            xs,
            local,
            local_req: 1,
            local_events: Vec::new(),
            guests: BTreeMap::new(),
            input_to: None,
            input_partial: Vec::new(),
            input_pending: Vec::new(),
            cfg,
            restarted: false,
        }
    }

    /// dom0's own XenStore client (in-process).
    pub fn store(&mut self) -> LocalStore<'_> {
        LocalStore {
            xs: &mut self.xs,
            conn: self.local,
            next_req: &mut self.local_req,
            events: &mut self.local_events,
        }
    }

    /// Whether `dom` is being served.
    pub fn serves(&self, dom: DomId) -> bool {
        self.guests.contains_key(&dom.0)
    }

    /// Ids of the domUs being served.
    pub fn guest_ids(&self) -> Vec<u16> {
        self.guests.keys().copied().collect()
    }

    /// Takes on a domU the hypervisor (or the toolstack) started: its XenStore home, its
    /// XenStore ring (grant ref 1), its console ring (grant ref 0), and the event channels it
    /// offered dom0.
    pub fn adopt(&mut self, dom: DomId, name: &str) {
        if self.guests.contains_key(&dom.0) {
            return;
        }
        let _ = self.xs.create_domain_home(dom, name);
        let ports = offered_ports(dom);
        let (store_port, console_port) = (ports.first().copied(), ports.get(1).copied());
        let store = store_port.and_then(|rp| StoreConn::connect(dom, rp));
        let console = console_port.and_then(|rp| ConsoleConn::connect(dom, GrantRef(0), rp));
        if let (Some(s), Some(c)) = (&store, &console) {
            let home = format!("/local/domain/{}", dom.0);
            let _ = self.xs.write_privileged(&format!("{home}/console/ring-ref"), b"0");
            let _ = self.xs.write_privileged(
                &format!("{home}/console/port"),
                format!("{}", c.port.0).as_bytes(),
            );
            let _ = self.xs.write_privileged(
                &format!("{home}/store/port"),
                format!("{}", s.port.0).as_bytes(),
            );
            let _ = self.xs.introduce_domain(dom);
        }
        println!(
            "dom0: d{} ({name}) adopted: xenstore {}, console {}",
            dom.0,
            if store.is_some() { "connected" } else { "none" },
            if console.is_some() { "connected" } else { "none" }
        );
        self.guests
            .insert(dom.0, Guest { name: name.into(), store, console, vcons: BTreeMap::new() });
        if self.cfg.vcons {
            self.add_vcons(dom, 1);
        }
    }

    /// A domU is gone: forget its connections (the hypervisor already closed its ports and
    /// unmapped nothing of ours: our mappings of its pages keep them alive until dropped here).
    pub fn forget(&mut self, dom: DomId) {
        // Whatever it printed before it went is still in its ring: print that first.
        self.serve_console(dom.0, &[], time::now_ns());
        self.serve_vcons(dom.0);
        if let Some(mut g) = self.guests.remove(&dom.0) {
            if let Some(c) = g.console.take() {
                flush_line(&g.name, &c.line);
                c.close();
            }
            if let Some(s) = g.store.take() {
                s.close();
            }
            for (_, v) in core::mem::take(&mut g.vcons) {
                if let Some(c) = v.conn {
                    c.close();
                }
            }
            self.xs.domain_died(dom);
            let _ = self.xs.remove_domain_home(dom);
            println!("dom0: d{} ({}) is gone", dom.0, g.name);
        }
    }

    /// Creates a secondary console device for `dom` (the toolstack's half of xenbus).
    fn add_vcons(&mut self, dom: DomId, id: u32) {
        let fe = xenbus::frontend_dir(dom.0, "console", id);
        let be = xenbus::backend_dir(0, "console", dom.0, id);
        let fe_perms = Perms::new(dom, Access::None).with(DomId(0), Access::Read);
        let be_perms = Perms::new(DomId(0), Access::None).with(dom, Access::Read);
        let w = |xs: &mut XenStore, p: &str, v: &str| xs.write_privileged(p, v.as_bytes());
        let _ = w(&mut self.xs, &format!("{fe}/backend"), &be);
        let _ = w(&mut self.xs, &format!("{fe}/backend-id"), "0");
        let _ = w(&mut self.xs, &format!("{fe}/state"), "1");
        let _ = w(&mut self.xs, &format!("{be}/frontend"), &fe);
        let _ = w(&mut self.xs, &format!("{be}/frontend-id"), &format!("{}", dom.0));
        let _ = w(&mut self.xs, &format!("{be}/state"), "1");
        for p in ["", "/backend", "/backend-id", "/state"] {
            let _ = self.xs.set_perms_privileged(&format!("{fe}{p}"), fe_perms.clone());
        }
        for p in ["", "/frontend", "/frontend-id", "/state"] {
            let _ = self.xs.set_perms_privileged(&format!("{be}{p}"), be_perms.clone());
        }
        // The back end is ready for the frontend.
        let _ =
            w(&mut self.xs, &format!("{be}/state"), &format!("{}", XenbusState::InitWait as u32));
        if let Some(g) = self.guests.get_mut(&dom.0) {
            let label = format!("{}/{id}", g.name);
            g.vcons.insert(id, Vcons { fe_dir: fe, be_dir: be, label, conn: None, lines: 0 });
        }
    }

    /// One round of work: every port that fired, then every guest's rings within budget.
    pub fn round(&mut self) {
        let fired = events::take_queued();
        let now = time::now_ns();
        let ids: Vec<u16> = self.guests.keys().copied().collect();
        for id in ids {
            self.serve_store(id);
            self.serve_console(id, &fired, now);
            self.serve_vcons(id);
        }
        self.flush_local_events();
        self.poll_input();
    }

    fn serve_store(&mut self, id: u16) {
        let dom = DomId(id);
        let conn = ConnId::Domain(dom);
        let Some(g) = self.guests.get_mut(&id) else { return };
        let Some(s) = g.store.as_mut() else { return };
        let mut broken = false;
        // One event for everything this round moved: the guest is waiting for its reply, and
        // waking it for each half of the request it sent costs a domain switch each time.
        let mut notify = false;
        // Requests in: as many bytes as xenstored wants, within the budget.
        let mut taken = 0;
        let mut buf = [0u8; 1024];
        loop {
            let want = self.xs.input_wanted(conn).min(STORE_BUDGET - taken).min(buf.len());
            if want == 0 {
                break;
            }
            match s.ring.read(&mut buf[..want]) {
                Ok(t) if t.bytes > 0 => {
                    taken += t.bytes;
                    if self.xs.feed(conn, &buf[..t.bytes]).is_err() {
                        broken = true;
                        break;
                    }
                    notify = true;
                }
                Ok(_) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        // Replies and watch events out.
        loop {
            let out = self.xs.output(conn);
            if out.is_empty() {
                break;
            }
            match s.ring.write(out) {
                Ok(t) if t.bytes > 0 => {
                    self.xs.consume_output(conn, t.bytes);
                    notify = true;
                }
                Ok(_) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if notify && !broken {
            let _ = events::send(s.port);
        }
        if broken {
            if let Some(s) = g.store.take() {
                s.ring.control().set_error(1);
                s.close();
            }
            self.xs.domain_died(dom);
            println!("dom0: d{id} ({}): XenStore protocol broken: ring disconnected", g.name);
        }
    }

    fn serve_console(&mut self, id: u16, fired: &[EvtchnPort], now: u64) {
        let route = self.input_to;
        let Some(g) = self.guests.get_mut(&id) else { return };
        let Some(c) = g.console.as_mut() else { return };
        if fired.contains(&c.port) {
            c.events += 1;
        }
        let mut why = None;
        match c.drain(&g.name) {
            Ok((taken, _)) if taken > 0 => c.events = 0,
            Ok(_) => {}
            Err(e) => why = Some(format!("ring indices out of range ({e:?})")),
        }
        if now.saturating_sub(c.window_start) > 1_000_000_000 {
            c.window_start = now;
            c.events = 0;
        } else if c.events > STORM_EVENTS {
            why = Some(format!("event storm ({} events in under a second, no data)", c.events));
        }
        if route == Some(id) && !self.input_pending.is_empty() {
            let _ = c.ring.write(&self.input_pending);
            let _ = events::send(c.port);
            self.input_pending.clear();
        }
        if let Some(why) = why {
            // One line, then silence: the device is gone until the guest is rebuilt.
            println!("dom0: d{id} ({}): console disconnected: {why}", g.name);
            if let Some(c) = g.console.take() {
                c.close();
            }
        }
    }

    fn serve_vcons(&mut self, id: u16) {
        let Services { xs, local, local_req, local_events, guests, cfg, restarted, .. } = self;
        let Some(g) = guests.get_mut(&id) else { return };
        let mut lsvc = LocalStore { xs, conn: *local, next_req: local_req, events: local_events };
        for v in g.vcons.values_mut() {
            let fe_state = xenbus::state(&mut lsvc, &v.fe_dir);
            match (&v.conn, fe_state) {
                // Only a frontend that (re)published its ring: after a back-end restart, one
                // still "Connected" to the old back end must notice and start over.
                (None, XenbusState::Initialised) => {
                    let gref = xenbus::read_u64(&mut lsvc, &format!("{}/ring-ref", v.fe_dir));
                    let port = xenbus::read_u64(&mut lsvc, &format!("{}/port", v.fe_dir));
                    if let (Some(gref), Some(port)) = (gref, port) {
                        let conn = ConsoleConn::connect(
                            DomId(id),
                            GrantRef(gref as u32),
                            EvtchnPort(port as u32),
                        );
                        if conn.is_some() {
                            v.conn = conn;
                            let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::Connected);
                        }
                    }
                }
                (Some(_), XenbusState::Closing | XenbusState::Closed) => {
                    if let Some(c) = v.conn.take() {
                        c.close();
                    }
                    let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::InitWait);
                }
                _ => {}
            }
            if let Some(c) = v.conn.as_mut()
                && let Ok((_, lines)) = c.drain(&v.label)
            {
                v.lines += lines;
            }
            // A back-end restart, on request (tests): close, then come back as if new.
            let restart_after = cfg.vcons_restart_after;
            if restart_after > 0 && !*restarted && v.lines >= restart_after && v.conn.is_some() {
                *restarted = true;
                println!("dom0: restarting the console back end of {}", v.label);
                let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::Closing);
                if let Some(c) = v.conn.take() {
                    c.close();
                }
                let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::Closed);
                let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::InitWait);
            }
        }
    }

    /// Watch events for dom0's own connection (none are used yet: drained so they cannot pile
    /// up against the privileged backlog limit).
    fn flush_local_events(&mut self) {
        while self.xs.pop_output(self.local).is_some() {}
    }

    /// Serial input: a line `route <domid>` sends further lines to that guest's console,
    /// `route 0` back to dom0.
    fn poll_input(&mut self) {
        let mut buf = [0u8; 64];
        let n = match hypercall_abi::guest::console_io_read(&mut buf) {
            Ok(n) => n as usize,
            Err(_) => 0,
        };
        for &b in &buf[..n] {
            if b == b'\r' || b == b'\n' {
                let line = core::mem::take(&mut self.input_partial);
                let text = String::from_utf8_lossy(&line).into_owned();
                if let Some(d) =
                    text.strip_prefix("route ").and_then(|d| d.trim().parse::<u16>().ok())
                {
                    self.input_to = (d != 0).then_some(d);
                    println!(
                        "dom0: console input now goes to {}",
                        if d == 0 { String::from("dom0") } else { format!("d{d}") }
                    );
                } else if self.input_to.is_some() {
                    self.input_pending.extend_from_slice(&line);
                    self.input_pending.push(b'\n');
                } else if !text.is_empty() {
                    println!("dom0: input '{text}' (send it to a guest with: route <domid>)");
                }
            } else if self.input_partial.len() < 1024 {
                self.input_partial.push(b);
            }
        }
    }
}

fn flush_line(name: &str, line: &[u8]) {
    if line.is_empty() {
        return;
    }
    // Only printable text reaches the serial line: a guest must not drive the terminal.
    let text: String = line
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) || b == b'\t' { b as char } else { '?' })
        .collect();
    println!("[{name}] {text}");
}

/// dom0's in-process client of its own xenstored (it acts as the privileged domain).
pub struct LocalStore<'a> {
    xs: &'a mut XenStore,
    conn: ConnId,
    next_req: &'a mut u32,
    events: &'a mut Vec<(String, String)>,
}

impl Store for LocalStore<'_> {
    fn request(&mut self, kind: XsType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let req_id = *self.next_req;
        *self.next_req = req_id.wrapping_add(1);
        let hdr = XsdSockmsg { kind: kind as u32, req_id, tx_id: tx, len: payload.len() as u32 };
        self.xs.process(self.conn, hdr, payload);
        let mut reply = None;
        while let Some(msg) = self.xs.pop_output(self.conn) {
            let Some((h, p)) = crate::xenstore::wire::decode(&msg) else { continue };
            if h.kind == XsType::WatchEvent as u32 {
                let mut parts =
                    p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
                self.events
                    .push((parts.next().unwrap_or_default(), parts.next().unwrap_or_default()));
            } else if h.req_id == req_id {
                reply = Some(if h.kind == XsType::Error as u32 {
                    Err(XsError(String::from_utf8_lossy(p).trim_end_matches('\0').into()))
                } else {
                    Ok(p.to_vec())
                });
            }
        }
        reply.unwrap_or_else(|| Err(XsError("EIO".into())))
    }

    fn watch_event(&mut self) -> Option<(String, String)> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }
}
