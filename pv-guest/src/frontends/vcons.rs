//! A secondary console as a xenbus frontend (`device/console/<id>`): it is how this kernel
//! exercises the xenbus state machine and reconnection. The frontend waits for its backend's
//! InitWait, publishes a ring page (granted to the backend) and an event channel, goes
//! Initialised, and is Connected once the backend is. When the backend closes, the frontend
//! tears down its half and connects again as soon as a backend is back in InitWait.

use alloc::format;
use alloc::string::String;

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use ring_buffers::ConsoleGuest;

use crate::memory::pages::{self, OwnPage};
use crate::xenbus::{self, Peer, XenbusState, wait_state};
use crate::xenstore::Store;
use crate::{events, grant, memory::shared, time};

/// A connected (or connectable) secondary console.
pub struct Vcons {
    fe: String,
    be: Peer,
    page: OwnPage,
    gref: GrantRef,
    conn: Option<(ConsoleGuest<'static>, EvtchnPort)>,
    /// Times the connection was made again after the backend closed it.
    pub reconnects: u32,
}

impl Vcons {
    /// Finds the device's backend and connects. `dom` is this domain's id.
    pub fn connect(store: &mut dyn Store, dom: u16, id: u32) -> Result<Vcons, String> {
        let fe = xenbus::frontend_dir(dom, "console", id);
        let be = xenbus::backend_of(store, &fe).ok_or_else(|| format!("{fe}: no backend"))?;
        let page = pages::alloc_page().ok_or("no page for the ring")?;
        let gref = grant::alloc_ref().ok_or("no grant ref")?;
        let mut v = Vcons { fe, be, page, gref, conn: None, reconnects: 0 };
        v.handshake(store)?;
        Ok(v)
    }

    fn handshake(&mut self, store: &mut dyn Store) -> Result<(), String> {
        let s = wait_state(store, &self.be.dir, |s| s == XenbusState::InitWait, 10_000_000_000);
        if s != XenbusState::InitWait {
            return Err(format!("backend state {s:?}, not InitWait"));
        }
        let mut ring = shared::console_ring(self.page.shared());
        ring.reset();
        grant::grant_access(self.gref, DomId(self.be.domid), self.page.mfn(), false);
        let port = events::alloc_unbound(DomId(self.be.domid), |_| {})
            .map_err(|e| format!("evtchn: {e:?}"))?;
        let fe = self.fe.clone();
        store
            .write(0, &format!("{fe}/ring-ref"), format!("{}", self.gref.0).as_bytes())
            .map_err(|e| format!("{e:?}"))?;
        store
            .write(0, &format!("{fe}/port"), format!("{}", port.0).as_bytes())
            .map_err(|e| format!("{e:?}"))?;
        xenbus::set_state(store, &fe, XenbusState::Initialised).map_err(|e| format!("{e:?}"))?;
        let s = wait_state(store, &self.be.dir, |s| s == XenbusState::Connected, 10_000_000_000);
        if s != XenbusState::Connected {
            return Err(format!("backend state {s:?}, not Connected"));
        }
        xenbus::set_state(store, &fe, XenbusState::Connected).map_err(|e| format!("{e:?}"))?;
        self.conn = Some((ring.guest(), port));
        Ok(())
    }

    /// Tears down this end after the backend closed: waits until the backend unmapped the
    /// page (the grant can then be ended), closes the event channel, goes Closed.
    fn teardown(&mut self, store: &mut dyn Store) {
        if let Some((_ring, port)) = self.conn.take() {
            let _ = hypercall_abi::guest::evtchn_close(port);
            events::off(port);
        }
        let _ = xenbus::set_state(store, &self.fe, XenbusState::Closing);
        let deadline = time::now_ns() + 5_000_000_000;
        while !grant::end_access(self.gref) && time::now_ns() < deadline {
            time::sleep_ns(1_000_000);
        }
        let _ = xenbus::set_state(store, &self.fe, XenbusState::Closed);
    }

    /// Writes a line; if the backend has gone, reconnects first.
    pub fn write_line(&mut self, store: &mut dyn Store, line: &str) -> Result<(), String> {
        let be_state = xenbus::state(store, &self.be.dir);
        if self.conn.is_none() || be_state != XenbusState::Connected {
            self.teardown(store);
            let _ = xenbus::set_state(store, &self.fe, XenbusState::Initialising);
            self.handshake(store)?;
            self.reconnects += 1;
        }
        let (ring, port) = self.conn.as_mut().ok_or("not connected")?;
        let mut data = line.as_bytes().to_vec();
        data.push(b'\n');
        let mut rest = &data[..];
        let mut stalls = 0;
        while !rest.is_empty() {
            let t = ring.write(rest).map_err(|e| format!("ring: {e:?}"))?;
            rest = &rest[t.bytes..];
            if t.notify == ring_buffers::Notify::Yes {
                let _ = events::send(*port);
            }
            if t.bytes == 0 {
                stalls += 1;
                if stalls > 200 {
                    return Err("backend stopped reading".into());
                }
                time::sleep_ns(1_000_000);
            }
        }
        Ok(())
    }
}
