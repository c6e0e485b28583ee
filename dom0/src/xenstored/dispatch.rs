//! Request dispatch: one complete message in, one reply (and any watch events) queued.
//!
//! This is Xen's `process_message` order of checks: unknown or unsupported type `ENOSYS`;
//! privileged-only type from an unprivileged caller `EACCES`; a `tx_id` naming no open
//! transaction of this connection `ENOENT` (WATCH and UNWATCH ignore `tx_id`); then the
//! handler, whose argument errors are `EINVAL`. Replies echo `req_id` and `tx_id`, keep the
//! request's type, and carry the payloads xenstore.txt specifies; errors are type ERROR with
//! the errno name. A reply that would exceed `XENSTORE_PAYLOAD_MAX` becomes `E2BIG`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::{DomId, EvtchnPort, Mfn};

use super::perms::{Caller, Perms};
use super::transaction::TxId;
use super::watch::{self, Watch};
use super::wire::{
    self, PAYLOAD_MAX, XsType, XsdSockmsg, count_strings, encode, one_arg, parse_domid,
    split_first, strings,
};
use super::{Action, ConnId, XenStore, ops, path};

/// What a handler returns: the reply payload, or `None` if it queued its reply itself.
type Handled = Result<Option<Vec<u8>>, Errno>;

const OK: &[u8] = b"OK\0";

impl XenStore {
    /// Handles one complete message from `conn`: queues the reply (and any watch events).
    /// [`Self::feed`] calls this; dom0-local clients may call it directly.
    pub fn process(&mut self, conn: ConnId, header: XsdSockmsg, payload: &[u8]) {
        let Some(c) = self.conns.get(&conn) else { return };
        if c.broken {
            return;
        }
        let caller = c.caller;
        let (kind, body) = match self.dispatch(conn, caller, &header, payload) {
            Ok(None) => return,
            Ok(Some(body)) if body.len() <= PAYLOAD_MAX => (header.kind, body),
            Ok(Some(_)) => (XsType::Error as u32, error_payload(Errno::E2BIG)),
            Err(e) => (XsType::Error as u32, error_payload(e)),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue_reply(encode(kind, header.req_id, header.tx_id, &body));
        }
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        caller: Caller,
        h: &XsdSockmsg,
        payload: &[u8],
    ) -> Handled {
        use XsType as T;
        let Some(kind) = XsType::from_u32(h.kind) else { return Err(Errno::ENOSYS) };
        let privileged_only = matches!(
            kind,
            T::Introduce | T::Release | T::IsDomainIntroduced | T::Resume | T::SetTarget
        );
        if privileged_only && !caller.privileged {
            return Err(Errno::EACCES);
        }
        // WATCH and UNWATCH ignore tx_id (xenstore.txt); everything else names an open
        // transaction of this connection or none.
        let tx = match kind {
            T::Watch | T::Unwatch => TxId::NONE,
            _ => TxId(h.tx_id),
        };
        if tx != TxId::NONE && !self.conns.get(&conn).is_some_and(|c| c.transactions.contains(tx)) {
            return Err(Errno::ENOENT);
        }
        match kind {
            T::Read => {
                let p = self.arg_path(conn, &caller, one_arg(payload), false)?;
                self.run(conn, caller, tx, |v, _| ops::read(v, &caller, &p)).map(Some)
            }
            T::Directory => {
                let p = self.arg_path(conn, &caller, one_arg(payload), false)?;
                self.run(conn, caller, tx, |v, _| ops::directory(v, &caller, &p)).map(Some)
            }
            T::GetPerms => {
                let p = self.arg_path(conn, &caller, one_arg(payload), true)?;
                self.run(conn, caller, tx, |v, _| ops::get_perms(v, &caller, &p)).map(Some)
            }
            T::Write => {
                let (raw, value) = split_first(payload).ok_or(Errno::EINVAL)?;
                let p = self.arg_path(conn, &caller, Some(raw), false)?;
                self.run(conn, caller, tx, |v, ch| ops::write(v, &caller, &p, value, ch))?;
                Ok(Some(OK.to_vec()))
            }
            T::Mkdir => {
                let p = self.arg_path(conn, &caller, one_arg(payload), false)?;
                self.run(conn, caller, tx, |v, ch| ops::mkdir(v, &caller, &p, ch))?;
                Ok(Some(OK.to_vec()))
            }
            T::Rm => {
                let p = self.arg_path(conn, &caller, one_arg(payload), false)?;
                self.run(conn, caller, tx, |v, ch| ops::rm(v, &caller, &p, ch))?;
                Ok(Some(OK.to_vec()))
            }
            T::SetPerms => self.do_set_perms(conn, caller, tx, payload),
            T::Watch => self.do_watch(conn, caller, h, payload),
            T::Unwatch => self.do_unwatch(conn, caller, payload),
            T::TransactionStart => self.do_transaction_start(conn, caller, tx),
            T::TransactionEnd => self.do_transaction_end(conn, caller, tx, payload),
            T::Introduce => self.do_introduce(payload),
            T::Release => {
                let dom = self.arg_domain(payload)?;
                self.domain_died(dom);
                self.actions.push_back(Action::Release { dom });
                Ok(Some(OK.to_vec()))
            }
            T::Resume => {
                let dom = self.arg_domain(payload)?;
                if let Some(c) = self.conns.get_mut(&ConnId::Domain(dom)) {
                    c.shutdown = false;
                }
                Ok(Some(OK.to_vec()))
            }
            T::GetDomainPath => {
                let dom = parse_domid(one_arg(payload).ok_or(Errno::EINVAL)?)?;
                Ok(Some(nul_terminated(&path::home_path(dom))))
            }
            T::IsDomainIntroduced => {
                let dom = parse_domid(one_arg(payload).ok_or(Errno::EINVAL)?)?;
                let yes = dom == DomId::SELF_ || self.is_introduced(dom);
                Ok(Some(if yes { b"T\0".to_vec() } else { b"F\0".to_vec() }))
            }
            T::SetTarget => self.do_set_target(payload),
            T::ResetWatches => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.reset_watches_and_transactions();
                }
                Ok(Some(OK.to_vec()))
            }
            // Optional in xenstore.txt, or replies only: "not supported" is ENOSYS.
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Validates a path argument and makes it absolute for this connection.
    fn arg_path(
        &self,
        conn: ConnId,
        caller: &Caller,
        arg: Option<&[u8]>,
        allow_special: bool,
    ) -> Result<String, Errno> {
        let arg = arg.ok_or(Errno::EINVAL)?;
        let home = self.conns.get(&conn).map_or("/", |c| c.home.as_str());
        let quota = (!caller.privileged).then_some(self.quotas.max_path_len);
        path::canonicalize(arg, home, allow_special, quota).map(|c| c.abs)
    }

    /// The domid argument of RELEASE / RESUME: an introduced, unprivileged, ordinary domain.
    fn arg_domain(&self, payload: &[u8]) -> Result<DomId, Errno> {
        let dom = parse_domid(one_arg(payload).ok_or(Errno::EINVAL)?)?;
        if dom == self.privileged || !dom.is_ordinary() {
            return Err(Errno::EINVAL);
        }
        if !self.conns.contains_key(&ConnId::Domain(dom)) {
            return Err(Errno::ENOENT);
        }
        Ok(dom)
    }

    fn do_set_perms(&mut self, conn: ConnId, caller: Caller, tx: TxId, payload: &[u8]) -> Handled {
        let n = count_strings(payload);
        if n < 2 {
            return Err(Errno::EINVAL);
        }
        if !caller.privileged && n - 1 > self.quotas.max_perms {
            return Err(Errno::ENOSPC);
        }
        let mut args = strings(payload);
        let raw = args.next().ok_or(Errno::EINVAL)?;
        let perms = Perms::parse(args)?;
        // The owner must be a real domain. DOMID_ANY is honoured only from the privileged
        // domain: Xen ignores it unless dom0 enabled the DOMID_ANY feature for the domain,
        // which we do not implement, so we refuse it instead of silently dropping it.
        let any_wildcard = perms.entries().iter().any(|e| e.dom == DomId::ANY);
        if !perms.owner().is_ordinary() || (any_wildcard && !caller.privileged) {
            return Err(Errno::EINVAL);
        }
        let p = self.arg_path(conn, &caller, Some(raw), true)?;
        self.run(conn, caller, tx, |v, ch| ops::set_perms(v, &caller, &p, perms, ch))?;
        Ok(Some(OK.to_vec()))
    }

    fn do_watch(
        &mut self,
        conn: ConnId,
        caller: Caller,
        h: &XsdSockmsg,
        payload: &[u8],
    ) -> Handled {
        if count_strings(payload) != 2 {
            return Err(Errno::EINVAL);
        }
        let mut args = strings(payload);
        let (raw, token) = (args.next().ok_or(Errno::EINVAL)?, args.next().ok_or(Errno::EINVAL)?);
        let home = self.conns.get(&conn).map_or("/", |c| c.home.as_str());
        let quota = (!caller.privileged).then_some(self.quotas.max_path_len);
        let canon = path::canonicalize(raw, home, true, quota)?;
        let watch = Watch { path: canon.abs, token: token.to_vec(), rel_prefix: canon.rel_prefix };
        let held = self.domain_memory(caller.dom);
        let q = self.quotas;
        let Some(c) = self.conns.get_mut(&conn) else { return Ok(None) };
        if c.watches().iter().any(|w| w.path == watch.path && w.token == watch.token) {
            return Err(Errno::EEXIST);
        }
        if !caller.privileged {
            if c.watches().len() >= q.max_watches {
                return Err(Errno::ENOSPC);
            }
            if held + watch.bytes() > q.max_memory {
                return Err(Errno::ENOMEM);
            }
        }
        let first_event = watch::event_payload(watch.event_path(&watch.path), &watch.token);
        c.add_watch(watch);
        // Reply first, then the initial event (Xen's order).
        c.queue_reply(encode(h.kind, h.req_id, h.tx_id, OK));
        let may_merge = !first_event.starts_with(b"@");
        self.deliver(conn, first_event, may_merge);
        Ok(None)
    }

    fn do_unwatch(&mut self, conn: ConnId, caller: Caller, payload: &[u8]) -> Handled {
        if count_strings(payload) != 2 {
            return Err(Errno::EINVAL);
        }
        let mut args = strings(payload);
        let (raw, token) = (args.next().ok_or(Errno::EINVAL)?, args.next().ok_or(Errno::EINVAL)?);
        let p = self.arg_path(conn, &caller, Some(raw), true)?;
        let removed = self.conns.get_mut(&conn).is_some_and(|c| c.remove_watch(&p, token));
        if removed { Ok(Some(OK.to_vec())) } else { Err(Errno::ENOENT) }
    }

    fn do_transaction_start(&mut self, conn: ConnId, caller: Caller, tx: TxId) -> Handled {
        // Nested transactions are not supported (Xen: EBUSY).
        if tx != TxId::NONE {
            return Err(Errno::EBUSY);
        }
        let max = self.quotas.max_transactions;
        let Some(c) = self.conns.get_mut(&conn) else { return Ok(None) };
        if !caller.privileged && c.transactions.len() >= max {
            return Err(Errno::ENOSPC);
        }
        let id = c.transactions.start();
        Ok(Some(nul_terminated(&format!("{}", id.0))))
    }

    fn do_transaction_end(
        &mut self,
        conn: ConnId,
        caller: Caller,
        tx: TxId,
        payload: &[u8],
    ) -> Handled {
        let commit = match one_arg(payload) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(Errno::EINVAL),
        };
        let t = self.conns.get_mut(&conn).and_then(|c| c.transactions.take(tx));
        let Some(t) = t else { return Err(Errno::ENOENT) };
        if commit {
            self.commit(caller, t)?;
        }
        Ok(Some(OK.to_vec()))
    }

    fn do_introduce(&mut self, payload: &[u8]) -> Handled {
        let mut args = strings(payload);
        let (Some(dom), Some(frame), Some(port)) = (args.next(), args.next(), args.next()) else {
            return Err(Errno::EINVAL);
        };
        let dom = parse_domid(dom)?;
        let mfn = Mfn(wire::parse_frame(frame)?);
        let port = EvtchnPort(wire::parse_u32(port)?);
        if dom == self.privileged || !dom.is_ordinary() || port.0 == 0 {
            return Err(Errno::EINVAL);
        }
        self.introduce(dom);
        self.actions.push_back(Action::Introduce { dom, mfn, port });
        Ok(Some(OK.to_vec()))
    }

    fn do_set_target(&mut self, payload: &[u8]) -> Handled {
        let mut args = strings(payload);
        let (Some(dom), Some(target)) = (args.next(), args.next()) else {
            return Err(Errno::EINVAL);
        };
        let (dom, target) = (parse_domid(dom)?, parse_domid(target)?);
        if !self.conns.contains_key(&ConnId::Domain(target)) {
            return Err(Errno::ENOENT);
        }
        let c = self.conns.get_mut(&ConnId::Domain(dom)).ok_or(Errno::ENOENT)?;
        c.caller.target = Some(target);
        Ok(Some(OK.to_vec()))
    }
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 1);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

/// An ERROR payload: the errno's name and a nul. Names outside Xen's `xsd_errors` table
/// would mean nothing to clients; Xen sends `EINVAL` for those, and so do we.
fn error_payload(e: Errno) -> Vec<u8> {
    nul_terminated(hypercall_abi::xenstore::xsd_error_name(e))
}
