//! The secondary-console back end (`device/console/<id>` over xenbus): the device's XenStore
//! nodes are created when a domU is adopted (`vcons=1` on dom0's command line), then each round
//! follows the frontend's state: connect to the ring it published once it is Initialised,
//! drain it like a primary console (lines prefixed `name/id`), and go back to InitWait when the
//! frontend closes. For the reconnection tests, `vcons_restart_after=<n>` restarts the back end
//! once after `n` lines, as if it had been restarted.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::println;
use pv_guest::xenbus::{self, XenbusState};

use super::console::ConsoleConn;
use super::xenbus::DeviceNodes;
use crate::xenstored::XenStore;
use crate::xenstored::local::LocalStore;

/// One secondary console.
struct Vcons {
    fe_dir: String,
    be_dir: String,
    /// `name/id`, the prefix of its lines.
    label: String,
    conn: Option<ConsoleConn>,
    lines: u64,
}

/// Every domU's secondary consoles.
#[derive(Default)]
pub struct VconsBackend {
    devices: BTreeMap<u16, BTreeMap<u32, Vcons>>,
    /// Restart the back end once after this many lines (0: never).
    restart_after: u64,
    restarted: bool,
}

impl VconsBackend {
    pub fn new(restart_after: u64) -> Self {
        VconsBackend { restart_after, ..Default::default() }
    }

    /// Creates secondary console `id` for `dom` (named `name`): the xenbus nodes of both ends
    /// with their permissions (`xenbus::DeviceNodes`), the back end in InitWait.
    pub fn add(&mut self, xs: &mut XenStore, dom: DomId, name: &str, id: u32) {
        let nodes = DeviceNodes::create(xs, dom, "console", id, &[], &[]);
        let (fe, be) = (nodes.fe_dir, nodes.be_dir);
        let label = format!("{name}/{id}");
        self.devices
            .entry(dom.0)
            .or_default()
            .insert(id, Vcons { fe_dir: fe, be_dir: be, label, conn: None, lines: 0 });
    }

    /// One round of `id`'s secondary consoles, through dom0's own XenStore connection.
    pub fn serve(&mut self, id: u16, lsvc: &mut LocalStore<'_>) {
        let Some(devices) = self.devices.get_mut(&id) else { return };
        for v in devices.values_mut() {
            let fe_state = xenbus::state(lsvc, &v.fe_dir);
            match (&v.conn, fe_state) {
                // Only a frontend that (re)published its ring: after a back-end restart, one
                // still "Connected" to the old back end must notice and start over.
                (None, XenbusState::Initialised) => {
                    let gref = xenbus::read_u64(lsvc, &format!("{}/ring-ref", v.fe_dir));
                    let port = xenbus::read_u64(lsvc, &format!("{}/port", v.fe_dir));
                    if let (Some(gref), Some(port)) = (gref, port) {
                        let conn = ConsoleConn::connect(
                            DomId(id),
                            GrantRef(gref as u32),
                            EvtchnPort(port as u32),
                        );
                        if conn.is_some() {
                            v.conn = conn;
                            let _ = xenbus::set_state(lsvc, &v.be_dir, XenbusState::Connected);
                        }
                    }
                }
                (Some(_), XenbusState::Closing | XenbusState::Closed) => {
                    if let Some(c) = v.conn.take() {
                        c.close();
                    }
                    let _ = xenbus::set_state(lsvc, &v.be_dir, XenbusState::InitWait);
                }
                _ => {}
            }
            if let Some(c) = v.conn.as_mut()
                && let Ok((_, lines)) = c.drain(&v.label)
            {
                v.lines += lines;
            }
            // A back-end restart, on request (tests): close, then come back as if new.
            let restart_after = self.restart_after;
            if restart_after > 0 && !self.restarted && v.lines >= restart_after && v.conn.is_some()
            {
                self.restarted = true;
                println!("dom0: restarting the console back end of {}", v.label);
                let _ = xenbus::set_state(lsvc, &v.be_dir, XenbusState::Closing);
                if let Some(c) = v.conn.take() {
                    c.close();
                }
                let _ = xenbus::set_state(lsvc, &v.be_dir, XenbusState::Closed);
                let _ = xenbus::set_state(lsvc, &v.be_dir, XenbusState::InitWait);
            }
        }
    }

    /// `id` is gone: let go of its consoles' rings.
    pub fn disconnect(&mut self, id: u16) {
        for (_, v) in self.devices.remove(&id).unwrap_or_default() {
            if let Some(c) = v.conn {
                c.close();
            }
        }
    }
}
