//! The byte level: framing requests out of a ring's byte stream, encoding replies, and
//! splitting payloads into arguments.
//!
//! A message is a 16-byte `xsd_sockmsg` header (type, req_id, tx_id, len; native little
//! endian) followed by `len` payload bytes, `len <= XENSTORE_PAYLOAD_MAX` (4096). A header with
//! a longer payload is the one framing error: Xen kills such a connection, because the stream
//! can no longer be trusted (xenstore.txt). An unknown message *type* is not a framing error:
//! Xen answers it with `ENOSYS` and carries on, and so do we (see `XenStore::process`).
//!
//! The assembler holds at most one message, so a domain can make it buffer at most 4112
//! bytes, however it fills its ring.

use alloc::vec::Vec;

use hypercall_abi::DomId;
use hypercall_abi::errno::Errno;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

pub use hypercall_abi::xenstore::{XsType, XsdSockmsg};

/// Largest payload in either direction.
pub const PAYLOAD_MAX: usize = hypercall_abi::xenstore::XENSTORE_PAYLOAD_MAX as usize;
/// Longest absolute path.
pub const ABS_PATH_MAX: usize = hypercall_abi::xenstore::XENSTORE_ABS_PATH_MAX as usize;
/// Longest relative path (also Xen's default "path-max" quota).
pub const REL_PATH_MAX: usize = hypercall_abi::xenstore::XENSTORE_REL_PATH_MAX as usize;
/// Size of the message header.
pub const HEADER_LEN: usize = core::mem::size_of::<XsdSockmsg>();

/// A violation after which a connection's byte stream cannot be parsed any more. The glue
/// should stop serving the connection (the store has already dropped its watches and
/// transactions) until the domain is released or dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header announced a payload longer than [`PAYLOAD_MAX`].
    PayloadTooLong {
        /// The announced length.
        len: u32,
    },
    /// The connection was already shut down after an earlier violation, or never existed.
    NotConnected,
}

/// One complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: XsdSockmsg,
    pub payload: Vec<u8>,
}

/// Accumulates bytes read from a ring into complete messages.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Announced payload length, valid once the header is complete.
    payload_len: usize,
    payload: Vec<u8>,
}

impl MessageAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes still needed to complete the current message (at least 1). Reading no more than
    /// this from the ring keeps later messages in the ring, where they cost dom0 nothing.
    pub fn wanted(&self) -> usize {
        if self.header_len < HEADER_LEN {
            HEADER_LEN - self.header_len
        } else {
            self.payload_len - self.payload.len()
        }
    }

    /// True if no partial message is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_len == 0
    }

    /// Bytes buffered (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.header_len + self.payload.capacity()
    }

    /// Consumes bytes up to the end of the current message. Returns how many were used and
    /// the message if it is now complete; call again with the rest.
    pub fn push(&mut self, data: &[u8]) -> Result<(usize, Option<Message>), ProtocolError> {
        let mut used = 0;
        if self.header_len < HEADER_LEN {
            let n = (HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            used = n;
            if self.header_len < HEADER_LEN {
                return Ok((used, None));
            }
            let len = self.header_view().len;
            if len as usize > PAYLOAD_MAX {
                *self = Self::default();
                return Err(ProtocolError::PayloadTooLong { len });
            }
            self.payload_len = len as usize;
            self.payload = Vec::with_capacity(self.payload_len);
        }
        let rest = &data[used..];
        let n = (self.payload_len - self.payload.len()).min(rest.len());
        self.payload.extend_from_slice(&rest[..n]);
        used += n;
        if self.payload.len() < self.payload_len {
            return Ok((used, None));
        }
        let header = self.header_view();
        let payload = core::mem::take(&mut self.payload);
        *self = Self::default();
        Ok((used, Some(Message { header, payload })))
    }

    fn header_view(&self) -> XsdSockmsg {
        // The array is exactly the header's size, so this cannot fail.
        XsdSockmsg::read_from_bytes(&self.header[..]).unwrap_or_else(|_| XsdSockmsg::new_zeroed())
    }
}

/// Encodes a whole message: header then payload.
pub fn encode(kind: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = XsdSockmsg { kind, req_id, tx_id, len: payload.len() as u32 };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a request (for dom0-local clients and tests).
pub fn request(kind: XsType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    encode(kind as u32, req_id, tx_id, payload)
}

/// Splits an encoded message into header and payload, if it is well formed.
pub fn decode(bytes: &[u8]) -> Option<(XsdSockmsg, &[u8])> {
    let (header, payload) = XsdSockmsg::read_from_prefix(bytes).ok()?;
    (payload.len() == header.len as usize).then_some((header, payload))
}

/// The payload if it is exactly one nul-terminated string, without the nul (Xen's `onearg`).
pub(crate) fn one_arg(payload: &[u8]) -> Option<&[u8]> {
    let (&last, rest) = payload.split_last()?;
    (last == 0 && !rest.contains(&0)).then_some(rest)
}

/// The nul-terminated strings of a payload, without their nuls. Bytes after the last nul are
/// ignored, as Xen's `get_strings` does.
pub(crate) fn strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload.split_inclusive(|&b| b == 0).filter_map(|s| s.strip_suffix(&[0]))
}

/// Number of nul-terminated strings in a payload.
pub(crate) fn count_strings(payload: &[u8]) -> usize {
    payload.iter().filter(|&&b| b == 0).count()
}

/// The first string and everything after its nul (WRITE's path and value).
pub(crate) fn split_first(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = payload.iter().position(|&b| b == 0)?;
    Some((&payload[..nul], &payload[nul + 1..]))
}

/// Parses an unsigned decimal number of at most `max_digits` digits.
fn parse_decimal(digits: &[u8], max_digits: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_digits || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

/// Parses a decimal domid, 0..=65535. Stricter than Xen's `strtoul`: no sign, no spaces, not
/// empty.
pub(crate) fn parse_domid(digits: &[u8]) -> Result<DomId, Errno> {
    match parse_decimal(digits, 5) {
        Some(v) if v <= u64::from(u16::MAX) => Ok(DomId(v as u16)),
        _ => Err(Errno::EINVAL),
    }
}

/// Parses a decimal u32 (an event-channel port).
pub(crate) fn parse_u32(digits: &[u8]) -> Result<u32, Errno> {
    match parse_decimal(digits, 10) {
        Some(v) if v <= u64::from(u32::MAX) => Ok(v as u32),
        _ => Err(Errno::EINVAL),
    }
}

/// Parses INTRODUCE's frame number, which xenstore.txt says is sent as *signed* decimal: a
/// negative value is taken as its 64-bit two's complement.
pub(crate) fn parse_frame(text: &[u8]) -> Result<u64, Errno> {
    match text.strip_prefix(b"-") {
        Some(digits) => parse_decimal(digits, 19).map(|v| v.wrapping_neg()).ok_or(Errno::EINVAL),
        None => parse_decimal(text, 20).ok_or(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_across_arbitrary_splits() {
        let a = request(XsType::Read, 7, 0, b"/x\0");
        let b = request(XsType::Write, 8, 3, b"/y\0v");
        let stream: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        for chunk in 1..stream.len() {
            let mut asm = MessageAssembler::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    assert!(asm.wanted() >= 1);
                    let (n, msg) = asm.push(rest).unwrap();
                    rest = &rest[n..];
                    got.extend(msg);
                }
            }
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].header.req_id, 7);
            assert_eq!(got[1].payload, b"/y\0v");
            assert!(asm.is_idle());
        }
    }

    #[test]
    fn oversized_payload_is_a_protocol_error() {
        let mut bytes = encode(XsType::Write as u32, 1, 0, b"");
        bytes[12..16].copy_from_slice(&4097u32.to_le_bytes());
        let mut asm = MessageAssembler::new();
        assert_eq!(asm.push(&bytes), Err(ProtocolError::PayloadTooLong { len: 4097 }));
        bytes[12..16].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(asm.push(&bytes[..16]).unwrap(), (16, None));
        assert_eq!(asm.wanted(), 4096);
    }

    #[test]
    fn argument_helpers() {
        assert_eq!(one_arg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(one_arg(b"/a"), None);
        assert_eq!(one_arg(b"/a\0b\0"), None);
        assert_eq!(one_arg(b""), None);
        assert_eq!(strings(b"a\0b\0junk").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(count_strings(b"a\0\0"), 2);
        assert_eq!(split_first(b"/p\0v\0w"), Some((&b"/p"[..], &b"v\0w"[..])));
        assert_eq!(parse_domid(b"65535"), Ok(DomId(65535)));
        for bad in [&b""[..], b"65536", b"-1", b" 1", b"1x", b"000001"] {
            assert_eq!(parse_domid(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(parse_frame(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_frame(b"4096"), Ok(4096));
        assert_eq!(parse_u32(b"4294967296"), Err(Errno::EINVAL));
    }
}
