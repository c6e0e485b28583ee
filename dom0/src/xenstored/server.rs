//! xenstored as dom0 runs it: the hardware-free engine ([`XenStore`]), dom0's own in-process
//! connection to it ([`LocalStore`]), and one ring per domain it serves (grant ref 1 and the
//! XenStore port the domain offered dom0). Each round moves a domain's requests into the engine
//! (at most [`STORE_BUDGET`] bytes, so a flooding guest cannot stall the others) and its
//! replies and watch events back out, with one event for everything moved. A domain that
//! breaks the ring protocol is disconnected with one log line.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::grant::Mapping;
use pv_guest::memory::shared;
use pv_guest::{events, println};
use ring_buffers::XenstoreServer;

use super::local::LocalStore;
use super::{ConnId, Quotas, XenStore};
use crate::ring;

/// Bytes of XenStore requests taken from one guest per round.
const STORE_BUDGET: usize = 4096;

/// A domain's XenStore ring, as dom0 serves it.
struct StoreRing {
    ring: XenstoreServer<'static>,
    port: EvtchnPort,
    map: Mapping,
}

impl StoreRing {
    fn connect(dom: DomId, remote: EvtchnPort) -> Option<Self> {
        let (map, port) = ring::connect(dom, GrantRef(1), remote)?;
        Some(StoreRing { ring: shared::xenstore_ring(map.page()).server(), port, map })
    }

    fn close(self) {
        // The ring view goes with `self`; the mapping under it is released last.
        ring::disconnect(self.port, self.map);
    }
}

/// dom0's xenstored: the engine, dom0's own connection, and the domains' rings.
pub struct Xenstored {
    xs: XenStore,
    local: ConnId,
    local_req: u32,
    local_events: Vec<(String, String)>,
    rings: BTreeMap<u16, StoreRing>,
}

impl Default for Xenstored {
    fn default() -> Self {
        Self::new()
    }
}

impl Xenstored {
    pub fn new() -> Self {
        let mut xs = XenStore::new(Quotas::default());
        let local = xs.open_local();
        Xenstored { xs, local, local_req: 1, local_events: Vec::new(), rings: BTreeMap::new() }
    }

    /// The engine, for the privileged writes the toolstack's side makes (domain homes,
    /// device nodes, introductions).
    pub fn engine(&mut self) -> &mut XenStore {
        &mut self.xs
    }

    /// dom0's own XenStore client (in-process).
    pub fn local(&mut self) -> LocalStore<'_> {
        LocalStore {
            xs: &mut self.xs,
            conn: self.local,
            next_req: &mut self.local_req,
            events: &mut self.local_events,
        }
    }

    /// Connects to `dom`'s XenStore ring through its offered port `remote`; dom0's end of the
    /// event channel, or None if the ring could not be reached.
    pub fn connect(&mut self, dom: DomId, remote: EvtchnPort) -> Option<EvtchnPort> {
        let r = StoreRing::connect(dom, remote)?;
        let port = r.port;
        self.rings.insert(dom.0, r);
        Some(port)
    }

    /// Lets go of `dom`'s ring (the domain is gone).
    pub fn disconnect(&mut self, dom: DomId) {
        if let Some(r) = self.rings.remove(&dom.0) {
            r.close();
        }
    }

    /// One round of `id`'s ring (`name` for the log line if it breaks the protocol).
    pub fn serve(&mut self, id: u16, name: &str) {
        let dom = DomId(id);
        let conn = ConnId::Domain(dom);
        let Some(s) = self.rings.get_mut(&id) else { return };
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
            if let Some(s) = self.rings.remove(&id) {
                s.ring.control().set_error(1);
                s.close();
            }
            self.xs.domain_died(dom);
            println!("dom0: d{id} ({name}): XenStore protocol broken: ring disconnected");
        }
    }

    /// Watch events for dom0's own connection (none are used yet: drained so they cannot pile
    /// up against the privileged backlog limit).
    pub fn flush_local_events(&mut self) {
        while self.xs.pop_output(self.local).is_some() {}
    }
}
