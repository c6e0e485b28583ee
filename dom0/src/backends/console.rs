//! The console back end: every domU's PV console ring (grant ref 0 and the console port it
//! offered dom0) drained into dom0's output, each line prefixed with the domain's name, and
//! serial input routed to one guest's console (`route <domid>`; `route 0` back to dom0).
//!
//! A guest's console is a hostile peer: at most [`CONSOLE_BUDGET`] bytes are taken from it per
//! round, a line without a newline is cut at [`MAX_LINE`] bytes, only printable text reaches
//! the serial line, and a broken ring (indices out of range) or an event storm gets the console
//! disconnected with one log line. [`ConsoleConn`] is one ring's connection; the secondary
//! consoles (`vcons`) drain theirs the same way.

use alloc::collections::BTreeMap;
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

/// One console ring dom0 drains.
pub struct ConsoleConn {
    ring: ConsoleBackend<'static>,
    port: EvtchnPort,
    map: Mapping,
    line: Vec<u8>,
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
        match c.drain(name) {
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
            println!("dom0: d{id} ({name}): console disconnected: {why}");
            if let Some(c) = self.conns.remove(&id) {
                c.close();
            }
        }
    }

    /// `id` is gone: print what is left of its last line, and let go of its ring.
    pub fn disconnect(&mut self, id: u16, name: &str) {
        if let Some(c) = self.conns.remove(&id) {
            flush_line(name, &c.line);
            c.close();
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
