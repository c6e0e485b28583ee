//! xenbus: how the two ends of a split device find each other and agree on its state, through
//! XenStore. Both ends use this module (a domU frontend through its ring client, dom0's backend
//! through its in-process connection), via the [`Store`] trait.
//!
//! Layout, as on Xen: the frontend's directory is `device/<type>/<id>` in the guest's home
//! (`/local/domain/<domid>/...`) with `backend` and `backend-id`; the backend's is
//! `backend/<type>/<frontend-domid>/<id>` in the backend domain's home with `frontend` and
//! `frontend-id`. Each has a `state` node holding a [`XenbusState`] in decimal. The usual dance:
//! backend InitWait; frontend publishes its ring and event channel and goes Initialised;
//! backend connects and goes Connected; frontend Connected. Either end going Closing/Closed
//! tears the connection down; a backend back in InitWait lets the frontend connect again.

use alloc::format;
use alloc::string::String;

use crate::{events, time};

pub use hypercall_abi::io::xenbus::XenbusState;

pub use crate::xenstore::{Store, XsError};

/// The state written at `dir/state` (Unknown when absent or unreadable).
pub fn state(store: &mut dyn Store, dir: &str) -> XenbusState {
    store
        .read(0, &format!("{dir}/state"))
        .ok()
        .and_then(|v| XenbusState::parse(&v))
        .unwrap_or(XenbusState::Unknown)
}

/// Writes `s` at `dir/state`.
pub fn set_state(store: &mut dyn Store, dir: &str, s: XenbusState) -> Result<(), XsError> {
    store.write(0, &format!("{dir}/state"), s.as_str().as_bytes())
}

/// Waits (bounded by `timeout_ns`) until `dir`'s state satisfies `want`, with a XenStore watch.
pub fn wait_state(
    store: &mut dyn Store,
    dir: &str,
    want: fn(XenbusState) -> bool,
    timeout_ns: u64,
) -> XenbusState {
    let path = format!("{dir}/state");
    let _ = store.watch(&path, "xenbus");
    let deadline = time::now_ns() + timeout_ns;
    let mut s = state(store, dir);
    while !want(s) && time::now_ns() < deadline {
        let _ = hypercall_abi::guest::set_timer_op(time::now_ns() + 20_000_000);
        events::wait();
        while store.watch_event().is_some() {}
        s = state(store, dir);
    }
    let _ = store.unwatch(&path, "xenbus");
    s
}

/// The frontend directory of device `ty`/`id` of domain `dom`.
pub fn frontend_dir(dom: u16, ty: &str, id: u32) -> String {
    format!("/local/domain/{dom}/device/{ty}/{id}")
}

/// The backend directory, in backend domain `backend`, for `ty`/`id` of frontend domain `dom`.
pub fn backend_dir(backend: u16, ty: &str, dom: u16, id: u32) -> String {
    format!("/local/domain/{backend}/backend/{ty}/{dom}/{id}")
}

/// Reads a decimal number at `path`.
pub fn read_u64(store: &mut dyn Store, path: &str) -> Option<u64> {
    store.read_str(0, path).ok()?.trim_end_matches('\0').parse().ok()
}

/// What a frontend found about its backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub dir: String,
    pub domid: u16,
}

/// The backend a frontend directory names (`backend`, `backend-id`).
pub fn backend_of(store: &mut dyn Store, fe_dir: &str) -> Option<Peer> {
    let dir = store.read_str(0, &format!("{fe_dir}/backend")).ok()?;
    let domid = read_u64(store, &format!("{fe_dir}/backend-id"))? as u16;
    Some(Peer { dir: String::from(dir.trim_end_matches('\0')), domid })
}
