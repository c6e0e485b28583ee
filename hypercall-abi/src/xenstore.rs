//! XenStore wire protocol (`io/xs_wire.h`): the 16-byte message header, message types, error
//! names and the shared ring page (`xenstore_domain_interface`) between a guest and xenstored.
//!
//! A request is a header followed by `len` payload bytes, usually NUL-separated strings; the
//! reply echoes `req_id` and `tx_id`. Errors come back as `XS_ERROR` with the errno *name*
//! (`"ENOENT\0"`) as payload. Watch events arrive unsolicited as `XS_WATCH_EVENT` with payload
//! `path\0token\0`. Both rings use free-running `u32` indices masked by 1023, with the same
//! barrier discipline as the console ring.

use crate::errno::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Largest payload of one message. Violating it is a protocol error.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// Longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// Longest relative path.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;
/// Size of each ring in the shared page.
pub const XENSTORE_RING_SIZE: u32 = 1024;

/// Message types (`xsd_sockmsg_type`).
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum XsType {
    /// Control / debug command.
    Control = 0,
    /// List a node's children.
    Directory = 1,
    /// Read a node.
    Read = 2,
    /// Read a node's permissions.
    GetPerms = 3,
    /// Register a watch: `path\0token\0`.
    Watch = 4,
    /// Remove a watch: `path\0token\0`.
    Unwatch = 5,
    /// Start a transaction; reply is its id.
    TransactionStart = 6,
    /// End a transaction: `"T\0"` commit or `"F\0"` abort; `EAGAIN` means retry.
    TransactionEnd = 7,
    /// Introduce a domain to xenstored (dom0): `domid\0mfn\0evtchn\0`.
    Introduce = 8,
    /// Forget a domain (dom0).
    Release = 9,
    /// Path of a domain's home: `/local/domain/<id>`.
    GetDomainPath = 10,
    /// Write a node: `path\0value` (no trailing NUL).
    Write = 11,
    /// Create a node.
    Mkdir = 12,
    /// Remove a node and its children.
    Rm = 13,
    /// Set a node's permissions.
    SetPerms = 14,
    /// Watch fired (server to client): `path\0token\0`.
    WatchEvent = 15,
    /// Error reply: errno name.
    Error = 16,
    /// Is a domain introduced?
    IsDomainIntroduced = 17,
    /// Resume a domain.
    Resume = 18,
    /// Make one domain the target of another.
    SetTarget = 19,
    /// Remove all watches of the connection.
    ResetWatches = 21,
    /// Partial directory listing.
    DirectoryPart = 22,
    /// Get a feature.
    GetFeature = 23,
    /// Set a feature.
    SetFeature = 24,
    /// Get a quota.
    GetQuota = 25,
    /// Set a quota.
    SetQuota = 26,
    /// Guaranteed invalid type.
    Invalid = 0xffff,
}

/// Number of defined message types (one past the last valid one, 20 is unused).
pub const XS_TYPE_COUNT: u32 = 27;

impl XsType {
    /// The type for a wire value, if defined (20, the removed `XS_RESTRICT`, is not).
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<XsType> {
        use XsType::*;
        Some(match v {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            23 => GetFeature,
            24 => SetFeature,
            25 => GetQuota,
            26 => SetQuota,
            0xffff => Invalid,
            _ => return None,
        })
    }

    /// Wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// Message header (16 bytes), followed by `len` payload bytes.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XsdSockmsg {
    /// `XsType` as u32 (C field `type`).
    pub kind: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 = none).
    pub tx_id: u32,
    /// Payload length (at most [`XENSTORE_PAYLOAD_MAX`]).
    pub len: u32,
}

/// Index of the path in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_PATH: usize = 0;
/// Index of the token in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_TOKEN: usize = 1;

/// The errors xenstored reports, in the order of Xen's `xsd_errors` table (new entries are only
/// ever appended). Clients map an unknown name to `EINVAL`.
pub const XSD_ERRORS: &[Errno] = &[
    Errno::EINVAL,
    Errno::EACCES,
    Errno::EEXIST,
    Errno::EISDIR,
    Errno::ENOENT,
    Errno::ENOMEM,
    Errno::ENOSPC,
    Errno::EIO,
    Errno::ENOTEMPTY,
    Errno::ENOSYS,
    Errno::EROFS,
    Errno::EBUSY,
    Errno::EAGAIN,
    Errno::EISCONN,
    Errno::E2BIG,
    Errno::EPERM,
];

/// Parse an `XS_ERROR` payload (`"ENOENT\0"`) into an errno; unknown names give `EINVAL`, as
/// Xen's clients do.
#[must_use]
pub fn xsd_error_from_payload(payload: &[u8]) -> Errno {
    let name = payload.split(|&b| b == 0).next().unwrap_or(&[]);
    XSD_ERRORS
        .iter()
        .copied()
        .find(|e| e.name().map(str::as_bytes) == Some(name))
        .unwrap_or(Errno::EINVAL)
}

/// The `XS_ERROR` payload name for an errno (without the NUL); errnos outside the table are
/// reported as `EINVAL`.
#[must_use]
pub fn xsd_error_name(e: Errno) -> &'static str {
    let e = if XSD_ERRORS.contains(&e) { e } else { Errno::EINVAL };
    e.name().unwrap_or("EINVAL")
}

/// `server_features`: the ring can be reconnected (`connection` field).
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `server_features`: the `error` field is present.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `server_features`: `XS_WATCH` accepts a depth.
pub const XENSTORE_SERVER_FEATURE_WATCHDEPTH: u32 = 4;
/// `server_features`: `DOMID_ANY` allowed in permissions.
pub const XENSTORE_SERVER_FEATURE_DOMID_ANY: u32 = 8;

/// `connection`: steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: reconnect in progress (the guest set it; the server clears it when done).
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Offset of the request ring.
pub const REQ_OFF: usize = 0;
/// Offset of the response ring.
pub const RSP_OFF: usize = 1024;
/// Offset of `req_cons` (written by xenstored).
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod` (written by the guest).
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons` (written by the guest).
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod` (written by xenstored).
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features` (written by xenstored).
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error` (written by xenstored).
pub const ERROR: usize = 2072;
/// Offset of `evtchn_port`.
pub const EVTCHN_PORT: usize = 2076;

/// The XenStore ring page (`xenstore_domain_interface`, 2080 bytes at the start of a page).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenstoreDomainInterface {
    /// Requests: guest produces, xenstored consumes.
    pub req: [u8; 1024],
    /// Replies and watch events: xenstored produces, guest consumes.
    pub rsp: [u8; 1024],
    /// xenstored's consumer index of `req`.
    pub req_cons: u32,
    /// Guest's producer index of `req`.
    pub req_prod: u32,
    /// Guest's consumer index of `rsp`.
    pub rsp_cons: u32,
    /// xenstored's producer index of `rsp`.
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*` the server supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*` set by the server when it gives up on the ring.
    pub error: u32,
    /// Event channel of the ring (informational; the guest learns it from `start_info`).
    pub evtchn_port: u32,
}

crate::assert_layout!(XsdSockmsg, size = 16, kind = 0, req_id = 4, tx_id = 8, len = 12);
crate::assert_layout!(
    XenstoreDomainInterface,
    size = 2080,
    req = REQ_OFF,
    rsp = RSP_OFF,
    req_cons = REQ_CONS,
    req_prod = REQ_PROD,
    rsp_cons = RSP_CONS,
    rsp_prod = RSP_PROD,
    server_features = SERVER_FEATURES,
    connection = CONNECTION,
    error = ERROR,
    evtchn_port = EVTCHN_PORT
);

/// Ring position of a free-running index (`MASK_XENSTORE_IDX`).
#[must_use]
pub const fn mask_idx(idx: u32) -> usize {
    (idx & (XENSTORE_RING_SIZE - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip() {
        for v in 0..XS_TYPE_COUNT {
            match XsType::from_u32(v) {
                Some(t) => assert_eq!(t.as_u32(), v),
                None => assert_eq!(v, 20),
            }
        }
        assert_eq!(XsType::from_u32(0xffff), Some(XsType::Invalid));
        assert_eq!(XsType::from_u32(27), None);
        assert_eq!(XsType::Error as u32, 16);
        assert_eq!(XsType::WatchEvent as u32, 15);
    }

    #[test]
    fn error_names() {
        assert_eq!(xsd_error_from_payload(b"ENOENT\0"), Errno::ENOENT);
        assert_eq!(xsd_error_from_payload(b"EISDIR"), Errno::EISDIR);
        assert_eq!(xsd_error_from_payload(b"EWHATEVER\0"), Errno::EINVAL);
        assert_eq!(xsd_error_name(Errno::EACCES), "EACCES");
        assert_eq!(xsd_error_name(Errno::EFAULT), "EINVAL");
        assert!(XSD_ERRORS.iter().all(|e| e.name().is_some()));
    }
}
