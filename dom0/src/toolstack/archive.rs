//! dom0's ramdisk as an archive of guest kernels, ramdisks and configuration files: the
//! "newc" cpio format (`070701`, or `070702` with checksums, which are not checked), as
//! Linux's initramfs and `./scripts/run` write it. Each entry is a 110-byte ASCII header of
//! thirteen 8-digit hex fields, the NUL-terminated name padded to 4 bytes, then the data
//! padded to 4 bytes; `TRAILER!!!` ends it.
//!
//! The whole archive is checked when opened (every header, name and size against the bytes
//! there are), so a lookup afterwards cannot fail half way. Names are compared without a
//! leading `./` or `/`. The same format on a disk is searched piece by piece instead
//! ([`find_in`]: only headers and names are read, so a disk of guest images costs dom0 no
//! memory until a file is loaded). Hardware-free and host-tested.

use core::fmt;

const HEADER: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";
/// File type bits of `mode` and the regular-file type.
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// Why bytes are not a readable archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// No cpio magic at this offset.
    BadMagic(usize),
    /// A header field is not hex.
    BadField(usize),
    /// An entry's name or data runs past the end.
    Truncated(usize),
    /// A name that is not UTF-8 or has no terminating NUL.
    BadName(usize),
    /// No `TRAILER!!!` entry.
    NoTrailer,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::BadMagic(at) => {
                write!(f, "not a newc cpio archive (no magic at byte {at})")
            }
            ArchiveError::BadField(at) => write!(f, "bad cpio header field at byte {at}"),
            ArchiveError::Truncated(at) => write!(f, "cpio entry at byte {at} runs past the end"),
            ArchiveError::BadName(at) => write!(f, "bad cpio entry name at byte {at}"),
            ArchiveError::NoTrailer => write!(f, "cpio archive has no trailer"),
        }
    }
}

/// One entry of an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its name, without a leading `./` or `/`.
    pub name: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

impl Entry<'_> {
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

/// A checked archive over borrowed bytes.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
}

fn pad4(n: usize) -> usize {
    n.next_multiple_of(4)
}

fn field(bytes: &[u8], at: usize, i: usize) -> Result<usize, ArchiveError> {
    let start = at + 6 + i * 8;
    let text = core::str::from_utf8(&bytes[start..start + 8])
        .map_err(|_| ArchiveError::BadField(start))?;
    usize::from_str_radix(text, 16).map_err(|_| ArchiveError::BadField(start))
}

/// Whether `bytes` start with the magic of a newc archive.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(b"070701") || bytes.starts_with(b"070702")
}

/// The (mode, data size, name size) of the header at `at` of `bytes`.
fn header_at(bytes: &[u8], at: usize) -> Result<(u32, usize, usize), ArchiveError> {
    let header = bytes.get(at..at + HEADER).ok_or(ArchiveError::Truncated(at))?;
    if !has_magic(header) {
        return Err(ArchiveError::BadMagic(at));
    }
    Ok((field(bytes, at, 1)? as u32, field(bytes, at, 6)?, field(bytes, at, 11)?))
}

/// The entry at `at` and where the next one starts.
fn entry_at(bytes: &[u8], at: usize) -> Result<(Entry<'_>, usize), ArchiveError> {
    let (mode, size, namesize) = header_at(bytes, at)?;
    let name_end = (at + HEADER).checked_add(namesize).ok_or(ArchiveError::Truncated(at))?;
    let raw = bytes.get(at + HEADER..name_end).ok_or(ArchiveError::Truncated(at))?;
    let raw = raw.strip_suffix(&[0]).ok_or(ArchiveError::BadName(at))?;
    let name = core::str::from_utf8(raw).map_err(|_| ArchiveError::BadName(at))?;
    let data_start = pad4(name_end);
    let data_end = data_start.checked_add(size).ok_or(ArchiveError::Truncated(at))?;
    let data = bytes.get(data_start..data_end).ok_or(ArchiveError::Truncated(at))?;
    let name = name.trim_start_matches("./").trim_start_matches('/');
    Ok((Entry { name, mode, data }, pad4(data_end)))
}

impl<'a> Archive<'a> {
    /// Checks `bytes` is a whole archive.
    pub fn open(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        let mut at = 0;
        loop {
            if at >= bytes.len() {
                return Err(ArchiveError::NoTrailer);
            }
            let (e, next) = entry_at(bytes, at)?;
            if e.name.as_bytes() == TRAILER {
                return Ok(Archive { bytes });
            }
            at = next;
        }
    }

    /// Every entry before the trailer, in archive order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let bytes = self.bytes;
        let mut at = 0;
        core::iter::from_fn(move || {
            // `open` checked every entry up to the trailer.
            let (e, next) = entry_at(bytes, at).ok()?;
            if e.name.as_bytes() == TRAILER {
                return None;
            }
            at = next;
            Some(e)
        })
    }

    /// The regular file named `name` (without a leading `./` or `/`).
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.trim_start_matches("./").trim_start_matches('/');
        self.entries().find(|e| e.is_file() && e.name == name).map(|e| e.data)
    }
}

/// Where a file's data lies in an archive read piece by piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// Byte offset of the data from the archive's start.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

/// Longest entry name [`find_in`] reads (Linux's PATH_MAX).
pub const NAME_MAX: usize = 4096;

/// Looks up the regular file `name` in an archive of at most `len` bytes read through
/// `read(offset, buf)` (which fills `buf` from `offset` or says why not): only headers and
/// names are read. None when the trailer comes first. Bytes that are not such an archive, or
/// an entry running past `len`, are an error, as for [`Archive::open`].
pub fn find_in(
    len: u64,
    name: &str,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), alloc::string::String>,
) -> Result<Option<Located>, alloc::string::String> {
    use alloc::string::ToString;
    let want = name.trim_start_matches("./").trim_start_matches('/');
    let mut at: u64 = 0;
    let mut header = [0u8; HEADER];
    let mut raw = alloc::vec::Vec::new();
    loop {
        let here = at as usize;
        if at.checked_add(HEADER as u64).is_none_or(|end| end > len) {
            return Err(ArchiveError::NoTrailer.to_string());
        }
        read(at, &mut header)?;
        let (mode, size, namesize) = header_at(&header, 0).map_err(|e| {
            match e {
                ArchiveError::BadMagic(_) => ArchiveError::BadMagic(here),
                ArchiveError::BadField(f) => ArchiveError::BadField(here + f),
                other => other,
            }
            .to_string()
        })?;
        if namesize == 0 || namesize > NAME_MAX {
            return Err(ArchiveError::BadName(here).to_string());
        }
        let name_at = at + HEADER as u64;
        let data_at = (name_at + namesize as u64).next_multiple_of(4);
        let data_end = data_at + size as u64;
        if data_end > len {
            return Err(ArchiveError::Truncated(here).to_string());
        }
        raw.resize(namesize, 0);
        read(name_at, &mut raw)?;
        let text = raw.strip_suffix(&[0]).ok_or(ArchiveError::BadName(here).to_string())?;
        let entry =
            core::str::from_utf8(text).map_err(|_| ArchiveError::BadName(here).to_string())?;
        if entry.as_bytes() == TRAILER {
            return Ok(None);
        }
        let entry = entry.trim_start_matches("./").trim_start_matches('/');
        if mode & S_IFMT == S_IFREG && entry == want {
            return Ok(Some(Located { offset: data_at, size: size as u64 }));
        }
        at = data_end.next_multiple_of(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        out.extend_from_slice(b"070701");
        let fields = [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn sample() -> Vec<u8> {
        let mut a = Vec::new();
        entry(&mut a, ".", 0o040755, b"");
        entry(&mut a, "./kernels/pv-guest", 0o100644, b"\x7fELF-ish");
        entry(&mut a, "ticker.cfg", 0o100644, b"name = \"ticker\"\n");
        entry(&mut a, "link", 0o120777, b"ticker.cfg");
        entry(&mut a, "TRAILER!!!", 0, b"");
        a
    }

    #[test]
    fn files_are_found_by_name() {
        let bytes = sample();
        let a = Archive::open(&bytes).unwrap();
        assert_eq!(a.file("kernels/pv-guest"), Some(&b"\x7fELF-ish"[..]));
        assert_eq!(a.file("/ticker.cfg"), Some(&b"name = \"ticker\"\n"[..]));
        assert_eq!(a.file("link"), None, "a symlink is not a file");
        assert_eq!(a.file("missing"), None);
        let names: Vec<&str> = a.entries().map(|e| e.name).collect();
        assert_eq!(names, [".", "kernels/pv-guest", "ticker.cfg", "link"]);
    }

    #[test]
    fn damaged_archives_are_refused() {
        let good = sample();
        assert_eq!(Archive::open(b"").unwrap_err(), ArchiveError::NoTrailer);
        assert_eq!(
            Archive::open(b"\x7fELF and more bytes").unwrap_err(),
            ArchiveError::Truncated(0)
        );
        assert_eq!(Archive::open(&[b'x'; 200]).unwrap_err(), ArchiveError::BadMagic(0));
        // Cut anywhere inside, the archive is refused (never read past its end).
        for cut in [1, 109, 111, good.len() / 2, good.len() - 4] {
            assert!(Archive::open(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A size field that is not hex, and one that claims more than there is.
        let mut bad = good.clone();
        bad[6 + 6 * 8] = b'Z';
        assert_eq!(Archive::open(&bad).unwrap_err(), ArchiveError::BadField(54));
        let mut huge = good.clone();
        huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
        assert_eq!(Archive::open(&huge).unwrap_err(), ArchiveError::Truncated(0));
        // No trailer.
        let mut a = Vec::new();
        entry(&mut a, "f", 0o100644, b"x");
        assert_eq!(Archive::open(&a).unwrap_err(), ArchiveError::NoTrailer);
    }

    /// `find_in` over `bytes` (a disk of `len` bytes: zeros past the archive), counting reads.
    fn find(bytes: &[u8], len: u64, name: &str) -> (Result<Option<Located>, String>, usize) {
        let mut reads = 0;
        let r = find_in(len, name, |at, buf| {
            reads += 1;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = bytes.get(at as usize + i).copied().unwrap_or(0);
            }
            Ok(())
        });
        (r, reads)
    }

    #[test]
    fn a_file_is_found_piece_by_piece_as_in_memory() {
        let bytes = sample();
        let a = Archive::open(&bytes).unwrap();
        for name in ["kernels/pv-guest", "/ticker.cfg", "./ticker.cfg"] {
            let (r, reads) = find(&bytes, 1 << 20, name);
            let at = r.unwrap().unwrap();
            let data = &bytes[at.offset as usize..(at.offset + at.size) as usize];
            assert_eq!(Some(data), a.file(name), "{name}");
            assert!(reads <= 6, "headers and names only: {reads} reads");
        }
        assert_eq!(find(&bytes, 1 << 20, "link").0, Ok(None), "a symlink is not a file");
        assert_eq!(find(&bytes, 1 << 20, "missing").0, Ok(None));
    }

    #[test]
    fn a_damaged_archive_on_a_disk_is_an_error_not_a_hang() {
        let good = sample();
        // The disk ends inside the archive: an entry past its end.
        assert!(find(&good, good.len() as u64 - 8, "missing").0.is_err());
        // A disk of zeros, or of anything but an archive.
        assert_eq!(find(&[], 4096, "x").0, Err(ArchiveError::BadMagic(0).to_string()));
        // A name size of zero or past NAME_MAX.
        let mut bad = good.clone();
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00100000");
        assert_eq!(find(&bad, 1 << 20, "x").0, Err(ArchiveError::BadName(0).to_string()));
        // A size field that is not hex names the byte.
        let mut bad = good.clone();
        bad[6 + 6 * 8] = b'Z';
        assert_eq!(find(&bad, 1 << 20, "x").0, Err(ArchiveError::BadField(54).to_string()));
        // A read that fails is the error.
        assert_eq!(
            find_in(1 << 20, "x", |_, _| Err("disk error".into())),
            Err("disk error".into())
        );
        // No trailer: the walk stops at the end of the disk.
        let mut a = Vec::new();
        entry(&mut a, "f", 0o100644, b"x");
        assert!(find(&a, a.len() as u64, "missing").0.is_err());
    }
}
