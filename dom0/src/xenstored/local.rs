//! dom0's in-process client of its own xenstored: the runtime's `Store` trait over a local
//! connection (which acts as the privileged domain), so xenbus code runs the same in dom0's
//! back ends as in a domU's frontends. A request is processed at once; watch events that come
//! back with the reply are queued for [`Store::watch_event`].

use alloc::string::String;
use alloc::vec::Vec;

use pv_guest::xenstore::{Store, XsError};

use super::{ConnId, XenStore, XsType, XsdSockmsg};

/// A borrowed local connection to dom0's xenstored (see [`super::server::Xenstored::local`]).
pub struct LocalStore<'a> {
    pub(super) xs: &'a mut XenStore,
    pub(super) conn: ConnId,
    pub(super) next_req: &'a mut u32,
    pub(super) events: &'a mut Vec<(String, String)>,
}

impl Store for LocalStore<'_> {
    fn request(&mut self, kind: XsType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let req_id = *self.next_req;
        *self.next_req = req_id.wrapping_add(1);
        let hdr = XsdSockmsg { kind: kind as u32, req_id, tx_id: tx, len: payload.len() as u32 };
        self.xs.process(self.conn, hdr, payload);
        let mut reply = None;
        while let Some(msg) = self.xs.pop_output(self.conn) {
            let Some((h, p)) = super::wire::decode(&msg) else { continue };
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
