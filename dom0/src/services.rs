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
use pv_guest::xenbus::{self, XenbusState};
use pv_guest::xenstore::{Store, XsError};
use pv_guest::{events, println, shared, time};
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

struct StoreConn {
    ring: XenstoreServer<'static>,
    port: EvtchnPort,
    _map: Mapping,
}

struct ConsoleConn {
    ring: ConsoleBackend<'static>,
    port: EvtchnPort,
    _map: Mapping,
    line: Vec<u8>,
    /// Events and bytes in the current one-second window (storm detection).
    window_start: u64,
    events: u32,
}

/// A secondary console reached through xenbus.
struct Vcons {
    fe_dir: String,
    be_dir: String,
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
    input_line: Vec<u8>,
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
            input_line: Vec::new(),
            cfg,
            restarted: false,
        }
    }

    /// dom0's own XenStore client (in-process).
    pub fn store(&mut self) -> LocalStore<'_> {
        LocalStore { s: self }
    }

    /// Number of domUs being served.
    pub fn guests(&self) -> usize {
        self.guests.len()
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
        let store = store_port.and_then(|rp| {
            let map = grant::map(dom, GrantRef(1), false).ok()?;
            let port = events::bind_interdomain(dom, rp, |_| {}).ok()?;
            events::on_queue(port);
            let ring = shared::xenstore_ring(map.page).server();
            Some(StoreConn { ring, port, _map: map })
        });
        let console = console_port.and_then(|rp| {
            let map = grant::map(dom, GrantRef(0), false).ok()?;
            let port = events::bind_interdomain(dom, rp, |_| {}).ok()?;
            events::on_queue(port);
            let ring = shared::console_ring(map.page).backend();
            Some(ConsoleConn {
                ring,
                port,
                _map: map,
                line: Vec::new(),
                window_start: time::now_ns(),
                events: 0,
            })
        });
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
                drop_console(c);
            }
            if let Some(s) = g.store.take() {
                // The ring view goes with `s`; the mapping under it is released last.
                let StoreConn { port, _map, .. } = s;
                let _ = hypercall_abi::guest::evtchn_close(port);
                let _ = grant::unmap(&_map);
            }
            for (_, v) in core::mem::take(&mut g.vcons) {
                if let Some(c) = v.conn {
                    drop_console(c);
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
            g.vcons.insert(id, Vcons { fe_dir: fe, be_dir: be, conn: None, lines: 0 });
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
        loop {
            let want = self.xs.input_wanted(conn).min(STORE_BUDGET - taken);
            if want == 0 {
                break;
            }
            let mut buf = alloc::vec![0u8; want];
            match s.ring.read(&mut buf) {
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
            let name = g.name.clone();
            if let Some(s) = g.store.take() {
                s.ring.control().set_error(1);
                let _ = hypercall_abi::guest::evtchn_close(s.port);
            }
            self.xs.domain_died(dom);
            println!("dom0: d{id} ({name}): XenStore protocol broken: ring disconnected");
        }
    }

    fn serve_console(&mut self, id: u16, fired: &[EvtchnPort], now: u64) {
        let route = self.input_to;
        let Some(g) = self.guests.get_mut(&id) else { return };
        let Some(c) = g.console.as_mut() else { return };
        if fired.contains(&c.port) {
            c.events += 1;
        }
        let mut buf = [0u8; 256];
        let mut taken = 0;
        let mut why = None;
        while taken < CONSOLE_BUDGET {
            match c.ring.read(&mut buf) {
                Ok(t) if t.bytes > 0 => {
                    taken += t.bytes;
                    for &b in &buf[..t.bytes] {
                        if b == b'\n' || c.line.len() >= 200 {
                            flush_line(&g.name, &c.line);
                            c.line.clear();
                            if b == b'\n' {
                                continue;
                            }
                        }
                        if b != b'\r' {
                            c.line.push(b);
                        }
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    why = Some(format!("ring indices out of range ({e:?})"));
                    break;
                }
            }
        }
        if taken > 0 {
            // Room again: a writer waiting on a full ring may go on.
            let _ = events::send(c.port);
            c.events = 0;
        }
        if now.saturating_sub(c.window_start) > 1_000_000_000 {
            c.window_start = now;
            c.events = 0;
        } else if c.events > STORM_EVENTS {
            why = Some(format!("event storm ({} events in under a second, no data)", c.events));
        }
        if route == Some(id) && !self.input_line.is_empty() {
            let _ = c.ring.write(&self.input_line);
            let _ = events::send(c.port);
            self.input_line.clear();
        }
        if let Some(why) = why {
            // One line, then silence: the device is gone until the guest is rebuilt.
            println!("dom0: d{id} ({}): console disconnected: {why}", g.name);
            if let Some(c) = g.console.take() {
                drop_console(c);
            }
        }
    }

    fn serve_vcons(&mut self, id: u16) {
        let restart_after = self.cfg.vcons_restart_after;
        let Some(g) = self.guests.get_mut(&id) else { return };
        let name = g.name.clone();
        let mut lsvc =
            LocalStore::raw(&mut self.xs, self.local, &mut self.local_req, &mut self.local_events);
        for (n, v) in g.vcons.iter_mut() {
            let fe_state = xenbus::state(&mut lsvc, &v.fe_dir);
            match (&v.conn, fe_state) {
                // Only a frontend that (re)published its ring: after a back-end restart, one
                // still "Connected" to the old back end must notice and start over.
                (None, XenbusState::Initialised) => {
                    let gref = xenbus::read_u64(&mut lsvc, &format!("{}/ring-ref", v.fe_dir));
                    let port = xenbus::read_u64(&mut lsvc, &format!("{}/port", v.fe_dir));
                    if let (Some(gref), Some(port)) = (gref, port) {
                        let conn = grant::map(DomId(id), GrantRef(gref as u32), false)
                            .ok()
                            .and_then(|map| {
                                let p = events::bind_interdomain(
                                    DomId(id),
                                    EvtchnPort(port as u32),
                                    |_| {},
                                )
                                .ok()?;
                                events::on_queue(p);
                                let ring = shared::console_ring(map.page).backend();
                                Some(ConsoleConn {
                                    ring,
                                    port: p,
                                    _map: map,
                                    line: Vec::new(),
                                    window_start: 0,
                                    events: 0,
                                })
                            });
                        if conn.is_some() {
                            v.conn = conn;
                            let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::Connected);
                        }
                    }
                }
                (Some(_), XenbusState::Closing | XenbusState::Closed) => {
                    if let Some(c) = v.conn.take() {
                        drop_console(c);
                    }
                    let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::InitWait);
                }
                _ => {}
            }
            let label = format!("{name}/{n}");
            if let Some(c) = v.conn.as_mut() {
                let mut buf = [0u8; 256];
                let mut taken = 0;
                while taken < CONSOLE_BUDGET {
                    match c.ring.read(&mut buf) {
                        Ok(t) if t.bytes > 0 => {
                            taken += t.bytes;
                            for &b in &buf[..t.bytes] {
                                if b == b'\n' {
                                    flush_line(&label, &c.line);
                                    c.line.clear();
                                    v.lines += 1;
                                } else {
                                    c.line.push(b);
                                }
                            }
                        }
                        _ => break,
                    }
                }
                if taken > 0 {
                    let _ = events::send(c.port);
                }
            }
            // A back-end restart, on request (tests): close, then come back as if new.
            if restart_after > 0 && !self.restarted && v.lines >= restart_after && v.conn.is_some()
            {
                self.restarted = true;
                println!("dom0: restarting the console back end of {label}");
                let _ = xenbus::set_state(&mut lsvc, &v.be_dir, XenbusState::Closing);
                if let Some(c) = v.conn.take() {
                    drop_console(c);
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
                let line = core::mem::take(&mut self.input_line);
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
                    let mut l = line;
                    l.push(b'\n');
                    self.input_line = l;
                } else if !text.is_empty() {
                    println!("dom0: input '{text}' (send it to a guest with: route <domid>)");
                }
            } else {
                self.input_line.push(b);
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

fn drop_console(c: ConsoleConn) {
    let ConsoleConn { port, _map, .. } = c;
    events::off(port);
    let _ = hypercall_abi::guest::evtchn_close(port);
    let _ = grant::unmap(&_map);
}

/// dom0's in-process client of its own xenstored.
pub struct LocalStore<'a> {
    s: &'a mut Services,
}

/// The same, over the parts of [`Services`] it needs (so a caller can hold other parts).
pub struct RawLocalStore<'a> {
    xs: &'a mut XenStore,
    conn: ConnId,
    next_req: &'a mut u32,
    events: &'a mut Vec<(String, String)>,
}

impl LocalStore<'_> {
    #[allow(clippy::new_ret_no_self)]
    fn raw<'b>(
        xs: &'b mut XenStore,
        conn: ConnId,
        next_req: &'b mut u32,
        events: &'b mut Vec<(String, String)>,
    ) -> RawLocalStore<'b> {
        RawLocalStore { xs, conn, next_req, events }
    }
}

impl Store for RawLocalStore<'_> {
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

impl Store for LocalStore<'_> {
    fn request(&mut self, kind: XsType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let s = &mut *self.s;
        LocalStore::raw(&mut s.xs, s.local, &mut s.local_req, &mut s.local_events)
            .request(kind, tx, payload)
    }

    fn watch_event(&mut self) -> Option<(String, String)> {
        (!self.s.local_events.is_empty()).then(|| self.s.local_events.remove(0))
    }
}

impl Services {
    /// Ids of the domUs being served.
    pub fn guest_ids(&self) -> Vec<u16> {
        self.guests.keys().copied().collect()
    }
}
