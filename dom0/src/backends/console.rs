//! The console back end: every domU's PV console ring (grant ref 0 and the console port it
//! offered dom0) drained into dom0's output, each line prefixed with the domain's name, and
//! serial input routed to one guest's console (`route <domid>`; `route 0` back to dom0).
//!
//! A guest's console is a hostile peer: at most [`CONSOLE_BUDGET`] bytes are taken from it per
//! round, a line without a newline is cut at [`MAX_LINE`] bytes, only printable text reaches
//! the serial line, and a broken ring (indices out of range) or an event storm gets the console
//! disconnected with one log line. [`ConsoleConn`] is one ring's connection; the secondary
//! consoles (`vcons`) drain theirs the same way.
//!
//! The shell (`console <dom>`, as `xl console`) attaches the serial line to one guest: that
//! guest's output is then passed through as it comes (the user chose that terminal session, so
//! a guest's own line editing and prompts work; NUL and the other C0 bytes but BS, TAB, LF, CR
//! and ESC are still dropped), its lines held before the attach are shown first, typed bytes go
//! to its input ring as they are, and every other guest's lines are held (at most
//! [`HELD_LINES`] per guest, the oldest dropped) until the detach. In quiet mode (the
//! interactive shell's) lines are always held, as xenconsoled keeps a guest's output until
//! someone attaches.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::grant::Mapping;
use pv_guest::memory::shared;
use pv_guest::{events, println, time};
use ring_buffers::ConsoleBackend;

use crate::ring;

/// Bytes of console output taken from one guest per round (then the next guest's turn).
const CONSOLE_BUDGET: usize = 2048;
/// Rounds within one second in which a console port fired but no data moved, that count as an
/// event storm (dom0 coalesces events, so this counts wake-ups it was made to do for nothing).
const STORM_EVENTS: u32 = 500;
/// Longest console line kept before it is printed anyway: a guest that never sends a newline
/// cannot make dom0 hold more than this.
const MAX_LINE: usize = 200;
/// Lines of a guest's output held while it is not shown.
pub const HELD_LINES: usize = 64;

/// One console ring dom0 drains.
pub struct ConsoleConn {
    ring: ConsoleBackend<'static>,
    port: EvtchnPort,
    map: Mapping,
    line: Vec<u8>,
    /// Lines taken from the ring so far.
    lines_seen: u64,
    /// Events and bytes in the current one-second window (storm detection).
    window_start: u64,
    events: u32,
}

impl ConsoleConn {
    /// Maps `gref` of `dom` and binds to its port `remote`.
    pub fn connect(dom: DomId, gref: GrantRef, remote: EvtchnPort) -> Option<Self> {
        let (map, port) = ring::connect(dom, gref, remote)?;
        Some(ConsoleConn {
            ring: shared::console_ring(map.page()).backend(),
            port,
            map,
            line: Vec::new(),
            lines_seen: 0,
            window_start: time::now_ns(),
            events: 0,
        })
    }

    pub fn close(self) {
        ring::disconnect(self.port, self.map);
    }

    /// Takes up to [`CONSOLE_BUDGET`] bytes of output, printing each complete line (or each
    /// [`MAX_LINE`] bytes) as `[label] ...`; returns the bytes taken and the lines printed, or
    /// the ring's error. Tells the guest when it made room.
    pub fn drain(&mut self, label: &str) -> Result<(usize, u64), ring_buffers::RingError> {
        self.drain_lines(&mut |line| flush_line(label, line))
    }

    /// As [`drain`](Self::drain), handing each line to `out` instead of printing it.
    pub fn drain_lines(
        &mut self,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, u64), ring_buffers::RingError> {
        let mut buf = [0u8; 256];
        let (mut taken, mut lines) = (0, 0);
        let mut result = Ok(());
        while taken < CONSOLE_BUDGET {
            match self.ring.read(&mut buf) {
                Ok(t) if t.bytes > 0 => {
                    taken += t.bytes;
                    for &b in &buf[..t.bytes] {
                        if b == b'\n' || self.line.len() >= MAX_LINE {
                            out(&self.line);
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

    /// Takes up to [`CONSOLE_BUDGET`] bytes of output and prints them as they are (an attached
    /// console), after what is left of a partial line; returns the bytes taken.
    fn drain_raw(&mut self) -> Result<usize, ring_buffers::RingError> {
        let mut buf = [0u8; 256];
        let mut taken = 0;
        if !self.line.is_empty() {
            print_raw(&core::mem::take(&mut self.line));
        }
        while taken < CONSOLE_BUDGET {
            let t = self.ring.read(&mut buf)?;
            if t.bytes == 0 {
                break;
            }
            taken += t.bytes;
            print_raw(&buf[..t.bytes]);
        }
        if taken > 0 {
            let _ = events::send(self.port);
        }
        Ok(taken)
    }

    /// Writes `bytes` to the guest's input ring (what fits) and tells it; returns how many.
    fn send_input(&mut self, bytes: &[u8]) -> usize {
        let n = self.ring.write(bytes).map_or(0, |t| t.bytes);
        let _ = events::send(self.port);
        n
    }
}

/// Prints an attached guest's output as it came, without the C0 controls a terminal session
/// does not need (ESC stays: the guest's line editing uses it).
fn print_raw(bytes: &[u8]) {
    let text: String = bytes
        .iter()
        .filter(|&&b| b >= 0x20 || matches!(b, 0x08 | b'\t' | b'\n' | b'\r' | 0x1b))
        .map(|&b| if b < 0x7f { b as char } else { '?' })
        .collect();
    pv_guest::print!("{text}");
}

/// Prints a guest's line as `[name] text`.
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

/// Every domU's primary console, and where serial input goes.
#[derive(Default)]
pub struct Consoles {
    conns: BTreeMap<u16, ConsoleConn>,
    /// The guest serial input goes to (None: dom0 itself).
    input_to: Option<u16>,
    /// Whole lines waiting to go to `input_to`.
    input_pending: Vec<u8>,
    /// The guest the serial line is attached to (the shell's `console`).
    attached: Option<u16>,
    /// Hold every guest's lines instead of printing them (the interactive shell).
    quiet: bool,
    /// Lines held per guest, oldest first.
    held: BTreeMap<u16, VecDeque<Vec<u8>>>,
}

impl Consoles {
    /// Connects to `dom`'s console ring (grant ref 0) through its offered port `remote`;
    /// dom0's end of the event channel, or None if the ring could not be reached.
    pub fn connect(&mut self, dom: DomId, remote: EvtchnPort) -> Option<EvtchnPort> {
        let c = ConsoleConn::connect(dom, GrantRef(0), remote)?;
        let port = c.port;
        self.conns.insert(dom.0, c);
        Some(port)
    }

    /// One round of `id`'s console (`name` prefixes its lines): drain it within budget,
    /// deliver routed input, and disconnect it if it broke its ring or stormed. `fired`: the
    /// ports that fired this round.
    pub fn serve(&mut self, id: u16, name: &str, fired: &[EvtchnPort], now: u64) {
        let route = self.input_to;
        let Some(c) = self.conns.get_mut(&id) else { return };
        if fired.contains(&c.port) {
            c.events += 1;
        }
        let mut why = None;
        let drained = if self.attached == Some(id) {
            c.drain_raw().map(|t| (t, 0))
        } else if self.quiet || self.attached.is_some() {
            let held = self.held.entry(id).or_default();
            c.drain_lines(&mut |line| {
                if held.len() == HELD_LINES {
                    held.pop_front();
                }
                held.push_back(line.to_vec());
            })
        } else {
            c.drain(name)
        };
        match drained {
            Ok((taken, lines)) if taken > 0 => {
                c.events = 0;
                // Raw output (attached) counts as a line once anything came.
                c.lines_seen += lines.max(1);
            }
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
            println!("dom0: d{id} ({name}): console disconnected: {why}");
            if let Some(c) = self.conns.remove(&id) {
                c.close();
            }
        }
    }

    /// `id` is gone: print what is left of its last line, and let go of its ring.
    pub fn disconnect(&mut self, id: u16, name: &str) {
        if let Some(c) = self.conns.remove(&id) {
            if self.attached == Some(id) {
                print_raw(&c.line);
            } else if !self.quiet && self.attached.is_none() {
                flush_line(name, &c.line);
            }
            c.close();
        }
        self.held.remove(&id);
        if self.attached == Some(id) {
            self.attached = None;
        }
    }

    /// Hold every guest's lines (the interactive shell) or print them (`quiet` false).
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Lines (or, attached, outputs) taken from `id`'s console so far.
    pub fn lines_from(&self, id: u16) -> u64 {
        self.conns.get(&id).map_or(0, |c| c.lines_seen)
    }

    /// Whether `id` has a console dom0 reaches.
    pub fn is_connected(&self, id: u16) -> bool {
        self.conns.contains_key(&id)
    }

    /// The guest the serial line is attached to.
    pub fn attached(&self) -> Option<u16> {
        self.attached
    }

    /// Attaches the serial line to `id`'s console: what it printed while not shown comes
    /// first. False if it has no console.
    pub fn attach(&mut self, id: u16) -> bool {
        if !self.conns.contains_key(&id) {
            return false;
        }
        self.attached = Some(id);
        for line in self.held.remove(&id).unwrap_or_default() {
            print_raw(&line);
            print_raw(b"\r\n");
        }
        true
    }

    /// Back to the shell: the other guests' held lines are shown (unless quiet), labelled.
    pub fn detach(&mut self, names: &BTreeMap<u16, String>) {
        self.attached = None;
        if self.quiet {
            return;
        }
        for (id, lines) in core::mem::take(&mut self.held) {
            let name = names.get(&id).map_or("?", String::as_str);
            for line in lines {
                flush_line(name, &line);
            }
        }
    }

    /// Bytes typed while attached, for the attached guest's input ring; returns how many fit.
    pub fn send_input(&mut self, bytes: &[u8]) -> usize {
        match self.attached.and_then(|id| self.conns.get_mut(&id)) {
            Some(c) => c.send_input(bytes),
            None => 0,
        }
    }

    /// A line typed on dom0's serial line: `route <domid>` sends further lines to that
    /// guest's console, `route 0` back to dom0; other lines go to the guest input is routed to
    /// (at its console's next round), or are dom0's own.
    pub fn input_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        if let Some(d) = text.strip_prefix("route ").and_then(|d| d.trim().parse::<u16>().ok()) {
            self.input_to = (d != 0).then_some(d);
            println!(
                "dom0: console input now goes to {}",
                if d == 0 { String::from("dom0") } else { format!("d{d}") }
            );
        } else if self.input_to.is_some() {
            self.input_pending.extend_from_slice(line);
            self.input_pending.push(b'\n');
        } else if !text.is_empty() {
            println!("dom0: input '{text}' (send it to a guest with: route <domid>)");
        }
    }
}
