//! The kernel's XenStore client: Xen's wire protocol over the XenStore ring page the builder
//! gave this domain (start_info `store_mfn`, `store_evtchn`). A request is written whole, the
//! reply is awaited (watch events that arrive meanwhile are queued), and errors come back as
//! Xen's names (`ENOENT`, `EACCES`, `EAGAIN`, ...).
//!
//! The [`Store`] trait is what xenbus code uses, so the same code runs over this ring client in
//! a domU and over dom0's in-process connection to its own xenstored.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hypercall_abi::EvtchnPort;
use hypercall_abi::xenstore::{XENSTORE_PAYLOAD_MAX, XsType, XsdSockmsg};
use ring_buffers::XenstoreGuest;
use spin::Mutex;
use zerocopy::{FromBytes, IntoBytes};

use crate::events;
use crate::memory::shared;

/// A XenStore error: Xen's errno name, or "EIO" for a broken ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XsError(pub String);

/// What xenbus code needs from a XenStore connection.
pub trait Store {
    /// One request with `payload`; the reply's payload.
    fn request(&mut self, kind: XsType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError>;
    /// The next queued watch event (path, token), if any.
    fn watch_event(&mut self) -> Option<(String, String)>;

    fn read(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(XsType::Read, tx, &nul(path))
    }
    fn read_str(&mut self, tx: u32, path: &str) -> Result<String, XsError> {
        self.read(tx, path).map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value);
        self.request(XsType::Write, tx, &p).map(|_| ())
    }
    fn mkdir(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(XsType::Mkdir, tx, &nul(path)).map(|_| ())
    }
    fn rm(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(XsType::Rm, tx, &nul(path)).map(|_| ())
    }
    fn directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        let v = self.request(XsType::Directory, tx, &nul(path))?;
        Ok(v.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XsType::Watch, 0, &two(path, token)).map(|_| ())
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XsType::Unwatch, 0, &two(path, token)).map(|_| ())
    }
    fn transaction_start(&mut self) -> Result<u32, XsError> {
        let v = self.request(XsType::TransactionStart, 0, b"\0")?;
        String::from_utf8_lossy(&v)
            .trim_end_matches('\0')
            .parse()
            .map_err(|_| XsError("EIO".into()))
    }
    fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        self.request(XsType::TransactionEnd, tx, if commit { b"T\0" } else { b"F\0" }).map(|_| ())
    }
}

fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn two(a: &str, b: &str) -> Vec<u8> {
    let mut v = nul(a);
    v.extend_from_slice(&nul(b));
    v
}

/// The ring client.
pub struct Xs {
    ring: XenstoreGuest<'static>,
    port: EvtchnPort,
    next_req: u32,
    events: VecDeque<(String, String)>,
}

static CLIENT: Mutex<Option<Xs>> = Mutex::new(None);

/// Connects to xenstored through the ring start_info names. Fails if the domain has none
/// (dom0: its xenstored is in-process).
pub fn init(si: &hypercall_abi::start_info::StartInfo) -> Result<(), XsError> {
    if si.store_mfn.0 == 0 {
        return Err(XsError("ENODEV".into()));
    }
    let page = shared::own_page_for(si.store_mfn.0).ok_or_else(|| XsError("ENODEV".into()))?;
    let ring = shared::xenstore_ring(page).guest();
    events::on_queue(si.store_evtchn);
    let _ = events::unmask(si.store_evtchn);
    *CLIENT.lock() = Some(Xs { ring, port: si.store_evtchn, next_req: 1, events: VecDeque::new() });
    Ok(())
}

/// Runs `f` with the domain's XenStore client.
pub fn with<R>(f: impl FnOnce(&mut Xs) -> R) -> Option<R> {
    CLIENT.lock().as_mut().map(f)
}

/// Runs `f` with the client if it is free now (None if busy or absent): for code that runs
/// on a wake-up, possibly inside a request.
pub fn try_with<R>(f: impl FnOnce(&mut Xs) -> R) -> Option<R> {
    CLIENT.try_lock()?.as_mut().map(f)
}

impl Xs {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), XsError> {
        while !bytes.is_empty() {
            let t = self.ring.write(bytes).map_err(|_| XsError("EIO".into()))?;
            bytes = &bytes[t.bytes..];
            if t.notify == ring_buffers::Notify::Yes {
                let _ = events::send(self.port);
            }
            if !bytes.is_empty() {
                events::wait();
            }
        }
        Ok(())
    }

    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), XsError> {
        let mut got = 0;
        while got < buf.len() {
            let was_full = self.ring.read_available().map_err(|_| XsError("EIO".into()))?
                == ring_buffers::XENSTORE_RING_SIZE;
            let t = self.ring.read(&mut buf[got..]).map_err(|_| XsError("EIO".into()))?;
            got += t.bytes;
            if t.bytes > 0 {
                // Only a full ring can have xenstored waiting for room: telling it otherwise
                // costs two domain switches for nothing.
                if was_full {
                    let _ = events::send(self.port);
                }
            } else {
                events::wait();
            }
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<(XsdSockmsg, Vec<u8>), XsError> {
        let mut h = [0u8; 16];
        self.recv_exact(&mut h)?;
        let hdr = XsdSockmsg::read_from_bytes(&h).map_err(|_| XsError("EIO".into()))?;
        if hdr.len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError("EIO".into()));
        }
        let mut payload = alloc::vec![0u8; hdr.len as usize];
        self.recv_exact(&mut payload)?;
        Ok((hdr, payload))
    }
}

impl Store for Xs {
    fn request(&mut self, kind: XsType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        if payload.len() > XENSTORE_PAYLOAD_MAX as usize {
            return Err(XsError("E2BIG".into()));
        }
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let hdr = XsdSockmsg { kind: kind as u32, req_id, tx_id: tx, len: payload.len() as u32 };
        let mut msg = hdr.as_bytes().to_vec();
        msg.extend_from_slice(payload);
        self.send(&msg)?;
        loop {
            let (h, p) = self.recv()?;
            if h.kind == XsType::WatchEvent as u32 {
                let mut parts =
                    p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
                let (path, token) =
                    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                self.events.push_back((path, token));
                continue;
            }
            if h.req_id != req_id {
                continue;
            }
            if h.kind == XsType::Error as u32 {
                return Err(XsError(
                    String::from_utf8_lossy(&p).trim_end_matches('\0').to_string(),
                ));
            }
            return Ok(p);
        }
    }

    fn watch_event(&mut self) -> Option<(String, String)> {
        if self.events.is_empty() {
            // Pick up events that arrived without a request in flight.
            while self.ring.read_available().unwrap_or(0) >= 16 {
                let Ok((h, p)) = self.recv() else { break };
                if h.kind == XsType::WatchEvent as u32 {
                    let mut parts =
                        p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
                    self.events.push_back((
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                    ));
                }
            }
        }
        self.events.pop_front()
    }
}
