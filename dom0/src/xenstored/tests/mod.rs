//! Protocol-level tests: requests go in as bytes through [`XenStore::feed`], replies and
//! events come out through [`XenStore::pop_output`], as the glue will see them. This file
//! holds the harness; the tests are grouped by topic in the sub-modules.

mod database;
mod limits;
mod transactions;
mod watches;

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use super::*;

type Reply = Result<Vec<u8>, String>;

struct Harness {
    xs: XenStore,
    next_req: u32,
    events: BTreeMap<ConnId, Vec<(String, String)>>,
}

const DOM0: ConnId = ConnId::Domain(DomId(0));

fn d(id: u16) -> ConnId {
    ConnId::Domain(DomId(id))
}

impl Harness {
    fn new() -> Harness {
        Harness::with(Quotas::default())
    }

    fn with(quotas: Quotas) -> Harness {
        let mut xs = XenStore::new(quotas);
        // Tests talk to dom0 through a ring-style connection too; it is privileged.
        xs.conns.insert(DOM0, Connection::new(xs.system(), path::home_path(DomId(0))));
        Harness { xs, next_req: 1, events: BTreeMap::new() }
    }

    /// Introduces domU `id` with a toolstack-style home.
    fn domu(&mut self, id: u16) -> ConnId {
        self.xs.create_domain_home(DomId(id), &format!("guest{id}")).unwrap();
        self.xs.introduce_domain(DomId(id)).unwrap();
        d(id)
    }

    fn send(&mut self, conn: ConnId, kind: XsType, tx: u32, payload: &[u8]) -> u32 {
        let req = self.next_req;
        self.next_req += 1;
        let bytes = wire::request(kind, req, tx, payload);
        assert_eq!(self.xs.feed(conn, &bytes), Ok(bytes.len()));
        req
    }

    /// Drains the connection's output; returns the replies, stores the events.
    fn drain(&mut self, conn: ConnId) -> Vec<(XsdSockmsg, Vec<u8>)> {
        let mut replies = Vec::new();
        while let Some(msg) = self.xs.pop_output(conn) {
            let (h, payload) = wire::decode(&msg).expect("well-formed output");
            if h.kind == XsType::WatchEvent as u32 {
                assert_eq!((h.req_id, h.tx_id), (0, 0));
                let mut parts = payload.split(|&b| b == 0);
                let p = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
                let t = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
                self.events.entry(conn).or_default().push((p, t));
            } else {
                replies.push((h, payload.to_vec()));
            }
        }
        replies
    }

    fn call(&mut self, conn: ConnId, kind: XsType, tx: u32, payload: &[u8]) -> Reply {
        let req = self.send(conn, kind, tx, payload);
        let replies = self.drain(conn);
        assert_eq!(replies.len(), 1, "one reply per request");
        let (h, body) = &replies[0];
        assert_eq!((h.req_id, h.tx_id), (req, tx));
        if h.kind == XsType::Error as u32 {
            assert_eq!(body.last(), Some(&0));
            Err(String::from_utf8(body[..body.len() - 1].to_vec()).unwrap())
        } else {
            assert_eq!(h.kind, kind as u32);
            Ok(body.clone())
        }
    }

    fn events(&mut self, conn: ConnId) -> Vec<(String, String)> {
        self.drain(conn);
        self.events.remove(&conn).unwrap_or_default()
    }

    fn write(&mut self, conn: ConnId, p: &str, value: &str) -> Reply {
        self.write_tx(conn, 0, p, value)
    }

    fn write_tx(&mut self, conn: ConnId, tx: u32, p: &str, value: &str) -> Reply {
        self.call(conn, XsType::Write, tx, &[p.as_bytes(), b"\0", value.as_bytes()].concat())
    }

    fn read(&mut self, conn: ConnId, p: &str) -> Result<String, String> {
        self.read_tx(conn, 0, p)
    }

    fn read_tx(&mut self, conn: ConnId, tx: u32, p: &str) -> Result<String, String> {
        self.call(conn, XsType::Read, tx, &arg(p)).map(|v| String::from_utf8(v).unwrap())
    }

    fn dir(&mut self, conn: ConnId, p: &str) -> Result<Vec<String>, String> {
        let body = self.call(conn, XsType::Directory, 0, &arg(p))?;
        Ok(body
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect())
    }

    fn rm(&mut self, conn: ConnId, p: &str) -> Reply {
        self.call(conn, XsType::Rm, 0, &arg(p))
    }

    fn perms(&mut self, conn: ConnId, p: &str) -> Result<String, String> {
        let body = self.call(conn, XsType::GetPerms, 0, &arg(p))?;
        Ok(String::from_utf8(body).unwrap().replace('\0', " ").trim_end().to_string())
    }

    fn set_perms(&mut self, conn: ConnId, p: &str, perms: &[&str]) -> Reply {
        let mut payload = arg(p);
        for e in perms {
            payload.extend(arg(e));
        }
        self.call(conn, XsType::SetPerms, 0, &payload)
    }

    fn watch(&mut self, conn: ConnId, p: &str, token: &str) -> Reply {
        self.call(conn, XsType::Watch, 0, &[arg(p), arg(token)].concat())
    }

    fn tx_start(&mut self, conn: ConnId) -> u32 {
        let body = self.call(conn, XsType::TransactionStart, 0, b"\0").unwrap();
        core::str::from_utf8(&body[..body.len() - 1]).unwrap().parse().unwrap()
    }

    fn tx_end(&mut self, conn: ConnId, tx: u32, commit: bool) -> Reply {
        self.call(conn, XsType::TransactionEnd, tx, if commit { b"T\0" } else { b"F\0" })
    }

    fn check(&self) {
        self.xs.tree.check_consistency();
    }
}

fn arg(s: &str) -> Vec<u8> {
    [s.as_bytes(), b"\0"].concat()
}

fn ev(p: &str, t: &str) -> (String, String) {
    (p.to_string(), t.to_string())
}

fn err<T>(name: &str) -> Result<T, String> {
    Err(name.to_string())
}

fn ok() -> Reply {
    Ok(b"OK\0".to_vec())
}
