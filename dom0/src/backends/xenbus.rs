//! The back-end half of xenbus, shared by every back end: the state a back end moves to given
//! its own state, its frontend's, and whether it holds a connection ([`step`], hardware-free
//! and host-tested), and (dom0 only) the device's nodes in XenStore ([`DeviceNodes`]).
//!
//! The dance, as Xen's back ends do it: the back end waits in InitWait; the frontend
//! publishes its ring and event channel and goes Initialised (Linux may go straight to
//! Connected); the back end connects and goes Connected. When the frontend goes Closing,
//! Closed, back to Initialising (it restarted) or disappears, the back end lets go of the
//! connection and follows it to Closing or Closed; a frontend seen Initialising again once the
//! back end is Closing or Closed is a restart, and the back end goes back to InitWait for it.
//! A back end that closes a misbehaving frontend's device goes Closing itself and holds
//! nothing from then on: a frontend that never answers costs nothing.

use hypercall_abi::io::xenbus::XenbusState;

/// What a back end does this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do (keep serving, or keep waiting).
    Stay,
    /// Connect to what the frontend published, then go Connected (Closing if that fails).
    Connect,
    /// Let go of the connection and go to this state.
    Disconnect(XenbusState),
    /// Write this state (nothing is held).
    Switch(XenbusState),
}

/// The step for back-end state `be`, frontend state `fe`, and whether a connection is held.
pub fn step(be: XenbusState, fe: XenbusState, connected: bool) -> Step {
    use XenbusState::*;
    if connected {
        return match fe {
            Closing => Step::Disconnect(Closing),
            // Closed, gone, or restarted (Initialising: it went through Closed between two
            // looks): nothing of the old connection is valid any more.
            Closed | Unknown | Initialising => Step::Disconnect(Closed),
            // A frontend that publishes again while connected (Initialised, Connected) is
            // still this connection: Linux's frontends go Initialised -> Connected.
            _ if be != Connected => Step::Switch(Connected),
            _ => Step::Stay,
        };
    }
    match (be, fe) {
        (InitWait, Initialised | Connected) => Step::Connect,
        // Our own close, or the frontend's: follow the frontend down.
        (Closing, Closed | Unknown) => Step::Switch(Closed),
        // A restart: the frontend starts over; be ready for it again.
        (Closing | Closed, Initialising) => Step::Switch(InitWait),
        // Whatever held a connection is gone, yet the state says Connected (a connection
        // refused by `Connect` leaves Closing instead): fall back.
        (Connected, _) => Step::Switch(Closing),
        _ => Step::Stay,
    }
}

#[cfg(target_os = "none")]
pub use nodes::DeviceNodes;

#[cfg(target_os = "none")]
mod nodes {
    use alloc::format;
    use alloc::string::String;

    use hypercall_abi::DomId;
    use pv_guest::xenbus::{self, XenbusState};

    use crate::xenstored::{Access, Perms, XenStore};

    /// The two directories of one device, as the toolstack makes them.
    #[derive(Clone, Debug)]
    pub struct DeviceNodes {
        pub fe_dir: String,
        pub be_dir: String,
    }

    impl DeviceNodes {
        /// Creates device `ty`/`id` of `dom`: the frontend's directory (its `backend`,
        /// `backend-id`, `state` Initialising, and `fe_keys`) and the back end's (its
        /// `frontend`, `frontend-id`, and `be_keys`), each readable by the other end only,
        /// with the back end in InitWait once everything is written.
        pub fn create(
            xs: &mut XenStore,
            dom: DomId,
            ty: &str,
            id: u32,
            fe_keys: &[(&str, String)],
            be_keys: &[(&str, String)],
        ) -> Self {
            let fe = xenbus::frontend_dir(dom.0, ty, id);
            let be = xenbus::backend_dir(0, ty, dom.0, id);
            let fe_perms = Perms::new(dom, Access::None).with(DomId(0), Access::Read);
            let be_perms = Perms::new(DomId(0), Access::None).with(dom, Access::Read);
            let mut w = |p: &str, v: &str, perms: &Perms| {
                let _ = xs.write_privileged(p, v.as_bytes());
                let _ = xs.set_perms_privileged(p, perms.clone());
            };
            w(&fe, "", &fe_perms);
            w(&format!("{fe}/backend"), &be, &fe_perms);
            w(&format!("{fe}/backend-id"), "0", &fe_perms);
            w(&format!("{fe}/state"), XenbusState::Initialising.as_str(), &fe_perms);
            for (k, v) in fe_keys {
                w(&format!("{fe}/{k}"), v, &fe_perms);
            }
            w(&be, "", &be_perms);
            w(&format!("{be}/frontend"), &fe, &be_perms);
            w(&format!("{be}/frontend-id"), &format!("{}", dom.0), &be_perms);
            w(&format!("{be}/state"), XenbusState::Initialising.as_str(), &be_perms);
            for (k, v) in be_keys {
                w(&format!("{be}/{k}"), v, &be_perms);
            }
            // Everything the frontend needs before it starts is there: the back end is ready.
            w(&format!("{be}/state"), XenbusState::InitWait.as_str(), &be_perms);
            DeviceNodes { fe_dir: fe, be_dir: be }
        }

        /// Removes both directories (the domain is gone).
        pub fn remove(&self, xs: &mut XenStore) {
            let _ = xs.remove_privileged(&self.fe_dir);
            let _ = xs.remove_privileged(&self.be_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Step::*;
    use super::*;
    use XenbusState::*;

    /// Plays a sequence of frontend states against the back end, connecting whenever asked
    /// (if `can_connect`), and returns the back end's states after each.
    fn play(fes: &[XenbusState], can_connect: bool) -> alloc::vec::Vec<XenbusState> {
        let (mut be, mut connected) = (InitWait, false);
        let mut out = alloc::vec::Vec::new();
        for &fe in fes {
            match step(be, fe, connected) {
                Stay => {}
                Connect if can_connect => (be, connected) = (Connected, true),
                Connect => be = Closing,
                Disconnect(s) => (be, connected) = (s, false),
                Switch(s) => be = s,
            }
            out.push(be);
        }
        out
    }

    #[test]
    fn handshake() {
        assert_eq!(
            play(&[Initialising, Initialised, Connected, Connected], true),
            [InitWait, Connected, Connected, Connected]
        );
        // Linux may publish and go Connected at once.
        assert_eq!(play(&[Connected], true), [Connected]);
    }

    #[test]
    fn frontend_restart_step_by_step() {
        assert_eq!(
            play(&[Initialised, Connected, Closing, Closed, Initialising, Initialised], true),
            [Connected, Connected, Closing, Closed, InitWait, Connected]
        );
    }

    #[test]
    fn frontend_restart_seen_late() {
        // Between two looks the frontend went Closing, Closed and Initialising.
        assert_eq!(
            play(&[Initialised, Connected, Initialising, Initialising, Initialised], true),
            [Connected, Connected, Closed, InitWait, Connected]
        );
    }

    #[test]
    fn frontend_vanishes() {
        assert_eq!(play(&[Initialised, Unknown], true), [Connected, Closed]);
    }

    #[test]
    fn a_refused_connection_closes_and_waits_for_a_restart() {
        assert_eq!(
            play(&[Initialised, Initialised, Closed, Initialising, Initialised], false),
            [Closing, Closing, Closed, InitWait, Closing]
        );
    }

    #[test]
    fn closed_for_cause_holds_nothing_while_the_frontend_stays_silent() {
        // After the back end closed the device itself (Closing, not connected), a frontend
        // that still says Connected forever changes nothing.
        for _ in 0..3 {
            assert_eq!(step(Closing, Connected, false), Stay);
        }
        assert_eq!(step(Closing, Closed, false), Switch(Closed));
        assert_eq!(step(Closed, Initialising, false), Switch(InitWait));
    }

    #[test]
    fn waiting_back_end_ignores_a_closed_frontend() {
        assert_eq!(step(InitWait, Closed, false), Stay);
        assert_eq!(step(InitWait, Initialising, false), Stay);
    }
}
