//! Reaching a ring another domain shares with dom0: map the page it granted and bind the event
//! channel it offered, with the port's events queued for the service loop (`events::on_queue`:
//! a ring's work cannot run in the upcall). xenstored's rings and every back end's connect and
//! disconnect through here.

use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::events;
use pv_guest::grant::{self, Mapping};

/// Maps `gref` of `dom` and binds to its port `remote`, with events queued for the service
/// loop; on any failure nothing is left mapped or bound.
pub fn connect(dom: DomId, gref: GrantRef, remote: EvtchnPort) -> Option<(Mapping, EvtchnPort)> {
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
pub fn disconnect(port: EvtchnPort, map: Mapping) {
    events::off(port);
    let _ = hypercall_abi::guest::evtchn_close(port);
    let _ = grant::unmap(map);
}
