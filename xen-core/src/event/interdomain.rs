//! Event-channel operations that reach a second domain's table: binding to, sending to and
//! closing towards a peer. The two tables are always locked in one order (lower domain id
//! first), so two CPUs working in opposite directions cannot deadlock; closing a dying
//! domain's ports leaves its peers' ends unbound.

use alloc::sync::Arc;

use hypercall_abi::{Errno, EvtchnPort};

use super::ports::{self, Binding};
use crate::domain::{self, Domain};

/// Runs `f` with the event-channel tables of `a` and `b` locked in a fixed order (lower domain
/// id first) so two CPUs binding in opposite directions cannot deadlock.
pub fn with_pair<R>(a: &Domain, b: &Domain, f: impl FnOnce(ports::Tables<'_>) -> R) -> R {
    if a.id == b.id {
        return f(ports::Tables::Same(&mut a.evtchn.lock()));
    }
    if a.id < b.id {
        let mut ta = a.evtchn.lock();
        let mut tb = b.evtchn.lock();
        f(ports::Tables::Pair(&mut ta, &mut tb))
    } else {
        let mut tb = b.evtchn.lock();
        let mut ta = a.evtchn.lock();
        f(ports::Tables::Pair(&mut ta, &mut tb))
    }
}

/// Closes `port` of `d`, unbinding the peer's end if it is another live domain, or the
/// physical IRQ it was bound to (whose pin is masked again).
pub fn close(d: &Arc<Domain>, port: EvtchnPort) -> Result<(), Errno> {
    let binding = d.evtchn.lock().get(port)?.binding;
    if let Binding::Pirq { pirq } = binding {
        super::irq::unbind(d.id, pirq);
    }
    if let Binding::Interdomain { remote, .. } = binding
        && remote != d.id
        && let Some(peer) = domain::get(remote)
    {
        return with_pair(d, &peer, |t| match t {
            ports::Tables::Pair(local, peer) => ports::close(local, port, Some(peer)),
            ports::Tables::Same(local) => ports::close(local, port, None),
        });
    }
    ports::close(&mut d.evtchn.lock(), port, None)
}

/// Closes every port of a dying domain; its peers' ports become unbound. Allocates nothing:
/// it asks for the next port in use after the last one closed.
pub fn close_all(d: &Arc<Domain>) {
    let mut from = EvtchnPort(1);
    loop {
        // The table's lock must be dropped before `close` takes it again.
        let next = d.evtchn.lock().next_used_port(from);
        let Some(p) = next else { return };
        let _ = close(d, p);
        from = EvtchnPort(p.0 + 1);
    }
}
