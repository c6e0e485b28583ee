//! Linux's `bzImage` format, as a PV kernel arrives from a distribution (Debian's `vmlinuz`):
//! a real-mode setup header, then the compressed kernel ELF. The builder wants that ELF, so
//! this module finds the payload through the setup header, says how big it unpacks and how
//! big a dictionary its XZ stream needs (so the caller can find the memory: 66 MB and 32 MiB
//! for Debian's 6.1, more than a hypervisor heap holds), and unpacks it into buffers the
//! caller gives. It allocates nothing and knows nothing of where the buffers live.
//!
//! Setup header fields used (Linux's boot protocol 2.08+): `setup_sects` at 0x1f1 (0 means
//! 4), `"HdrS"` at 0x202, the protocol version at 0x206, `payload_offset` and
//! `payload_length` at 0x248 and 0x24c (the payload starts `payload_offset` bytes after the
//! setup sectors). The payload's last 4 bytes are the unpacked size. Every one of these is a
//! claim: checked against the file, and against [`MAX_UNPACKED`] and [`MAX_DICT`].

use alloc::format;

use super::image::ImageError;

/// The most an XZ payload may unpack to. A kernel ELF is tens of MB; the limit only keeps a
/// hostile size field from asking for all of memory.
pub const MAX_UNPACKED: usize = 512 << 20;
/// The largest XZ dictionary accepted (`xz -9` uses 64 MiB; kernels use 32 MiB).
pub const MAX_DICT: usize = 64 << 20;

const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0];
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// What a bzImage carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An uncompressed ELF (a kernel built with `KERNEL_UNCOMPRESSED`).
    Elf(&'a [u8]),
    /// An XZ stream (without the size trailer) that unpacks to `unpacked_len` bytes with a
    /// dictionary of `dict_len` bytes.
    Xz { stream: &'a [u8], unpacked_len: usize, dict_len: usize },
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Whether `bytes` looks like a bzImage (has the setup header's magic): the caller then goes
/// through [`payload`], and an ELF file is never mistaken for one.
pub fn is_bzimage(bytes: &[u8]) -> bool {
    bytes.get(0x202..0x206) == Some(b"HdrS") && !bytes.starts_with(ELF_MAGIC)
}

/// The payload of a bzImage. Fails on a malformed header, on a compression other than XZ,
/// and on sizes out of range.
pub fn payload(bytes: &[u8]) -> Result<Payload<'_>, ImageError> {
    let bad = ImageError::BadBzImage;
    if !is_bzimage(bytes) {
        return Err(bad("no \"HdrS\" setup header"));
    }
    let version = le16(bytes, 0x206).ok_or(bad("truncated setup header"))?;
    if version < 0x208 {
        return Err(bad("boot protocol before 2.08 has no payload fields"));
    }
    let setup_sects = match bytes[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let offset = le32(bytes, 0x248).ok_or(bad("truncated setup header"))? as usize;
    let len = le32(bytes, 0x24c).ok_or(bad("truncated setup header"))? as usize;
    let start = (setup_sects + 1) * 512 + offset;
    let p = start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or(bad("payload lies outside the file"))?;
    if p.starts_with(ELF_MAGIC) {
        return Ok(Payload::Elf(p));
    }
    if !p.starts_with(XZ_MAGIC) {
        return Err(ImageError::UnsupportedCompression(compression_name(p)));
    }
    let Some(stream_len) = p.len().checked_sub(4) else {
        return Err(bad("payload too short"));
    };
    let unpacked_len = le32(p, stream_len).ok_or(bad("payload too short"))? as usize;
    if !(64..=MAX_UNPACKED).contains(&unpacked_len) {
        return Err(bad("unpacked size out of range"));
    }
    let stream = &p[..stream_len];
    let dict_len = xz_dict_size(stream)?;
    Ok(Payload::Xz { stream, unpacked_len, dict_len })
}

/// What a payload that is not XZ is, for the error (the magic numbers Linux's decompressors
/// look for).
fn compression_name(p: &[u8]) -> &'static str {
    const KNOWN: &[(&[u8], &str)] = &[
        (&[0x1F, 0x8B], "gzip"),
        (b"BZh", "bzip2"),
        (&[0x5D, 0, 0], "lzma"),
        (&[0x89, b'L', b'Z', b'O'], "lzo"),
        (&[0x02, 0x21, 0x4C, 0x18], "lz4"),
        (&[0x28, 0xB5, 0x2F, 0xFD], "zstd"),
    ];
    KNOWN.iter().find(|(m, _)| p.starts_with(m)).map_or("an unknown format", |(_, n)| n)
}

/// Reads an XZ variable-length integer at `*at`.
fn vli(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The dictionary size the stream's first block declares (its LZMA2 filter's property),
/// rounded up to whole pages. The decoder checks everything else, CRCs included.
fn xz_dict_size(stream: &[u8]) -> Result<usize, ImageError> {
    let bad = |why: &'static str| ImageError::Xz(why.into());
    // Stream header: magic (6), flags (2), CRC32 (4); then the first block header.
    let size_byte = *stream.get(12).ok_or(bad("truncated stream header"))?;
    if size_byte == 0 {
        return Err(bad("stream holds no block"));
    }
    let header = stream.get(12..12 + (usize::from(size_byte) + 1) * 4).ok_or(bad("truncated"))?;
    let flags = header[1];
    if flags & 0x3C != 0 {
        return Err(bad("reserved block flags set"));
    }
    let mut at = 2;
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            vli(header, &mut at).ok_or(bad("bad block header"))?;
        }
    }
    let mut lzma2_prop = None;
    for _ in 0..=(flags & 3) {
        let id = vli(header, &mut at).ok_or(bad("bad filter flags"))?;
        let props_len = vli(header, &mut at).ok_or(bad("bad filter flags"))? as usize;
        let props = at
            .checked_add(props_len)
            .and_then(|end| header.get(at..end))
            .ok_or(bad("bad filter properties"))?;
        at += props_len;
        lzma2_prop = (id == 0x21 && props_len == 1).then(|| props[0]);
    }
    // LZMA2 is always the last filter; its property byte encodes the dictionary size.
    let p = lzma2_prop.ok_or(bad("last filter is not LZMA2"))?;
    if p > 40 {
        return Err(bad("invalid LZMA2 dictionary size"));
    }
    let dict = if p == 40 { u64::from(u32::MAX) } else { (2 | u64::from(p & 1)) << (p / 2 + 11) };
    let dict = usize::try_from(dict).map_err(|_| bad("dictionary too large"))?;
    if dict > MAX_DICT {
        return Err(ImageError::Xz(format!("dictionary of {dict} bytes is over the limit")));
    }
    Ok(dict.next_multiple_of(4096))
}

/// Unpacks an XZ payload into `out` (exactly the declared size), using `dict` (at least the
/// declared dictionary size) as the decoder's window. A stream that is truncated, corrupt
/// (the decoder checks the CRCs), or unpacks to more or less than declared is an error.
///
/// The decoder's state (about 30 KiB, its probability tables) is on the stack: the crate
/// builds it by value, and the hypervisor's boot stack (64 KiB) holds it. Never inlined, so
/// the frame exists only while unpacking.
#[inline(never)]
pub fn unpack_xz(stream: &[u8], out: &mut [u8], dict: &mut [u8]) -> Result<(), ImageError> {
    use xz4rust::{XzDecoder, XzError, XzNextBlockResult};
    let mut decoder = XzDecoder::with_fixed_size_dict(dict);
    let (mut read, mut written) = (0, 0);
    loop {
        let step = decoder.decode(&stream[read..], &mut out[written..]).map_err(|e| {
            ImageError::Xz(match e {
                // All the input is there: wanting more means the stream stops early.
                XzError::NeedsLargerInputBuffer => {
                    format!("stream truncated after {written} bytes")
                }
                e => format!("{e} after {written} bytes"),
            })
        })?;
        match step {
            XzNextBlockResult::NeedMoreData(r, w) => {
                read += r;
                written += w;
                if r == 0 && w == 0 {
                    return Err(ImageError::Xz(if read == stream.len() {
                        format!("stream truncated after {written} bytes")
                    } else {
                        format!("unpacks to more than the declared {} bytes", out.len())
                    }));
                }
            }
            XzNextBlockResult::EndOfStream(r, w) => {
                read += r;
                written += w;
                break;
            }
        }
    }
    if written != out.len() {
        return Err(ImageError::Xz(format!(
            "unpacks to {written} bytes, not the declared {}",
            out.len()
        )));
    }
    // Only stream padding (zeros) may follow the stream.
    if stream.get(read..).unwrap_or_default().iter().any(|&b| b != 0) {
        return Err(ImageError::Xz("data after the end of the stream".into()));
    }
    Ok(())
}
