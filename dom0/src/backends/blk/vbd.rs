//! A guest's virtual block device as its configuration names it: the `disk=` entry (a subset
//! of xl's positional syntax, `[phy:]<target>,<vdev>,<access>`) parsed into a [`VbdSpec`],
//! and the vbd's place on its backing disk ([`Region`]). Hardware-free and host-tested.
//!
//! The target names one of the virtio disks dom0 drives, in the order it found them:
//! `virtio0` is the whole first disk; `virtio0@<start>+<length>` a fixed region of it (start
//! and length in 512-byte sectors, or in bytes with a `K`, `M` or `G` suffix; the length may
//! be left out to run to the end). The vdev is Xen's name (`xvda`, `xvdb`, ... `xvdaa`) or
//! its number; access is `w`/`rw` or `r`/`ro`. Examples:
//! `disk = ['phy:virtio0,xvda,w']`, `disk = ['virtio0@1M+32M,xvdb,r']`.

use alloc::format;
use alloc::string::{String, ToString};

/// A parsed `disk=` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdSpec {
    /// Which virtio disk (its index in probe order).
    pub disk: usize,
    /// First sector of the region on that disk.
    pub start: u64,
    /// Sectors in the region (None: to the end of the disk).
    pub sectors: Option<u64>,
    /// The vdev as written (`xvda`).
    pub vdev_name: String,
    /// Xen's `virtual-device` number for it.
    pub vdev: u32,
    pub writable: bool,
}

/// Where a vbd lies on its disk, once the disk's size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub sectors: u64,
}

impl Region {
    /// The disk sector of vbd sector `sector` for `n` sectors, if all of them lie inside.
    pub fn translate(&self, sector: u64, n: u64) -> Option<u64> {
        let end = sector.checked_add(n)?;
        (end <= self.sectors).then_some(self.start + sector)
    }
}

/// A size in sectors: plain sectors, or bytes with K/M/G (a whole number of sectors).
fn sectors(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 512),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let bytes = n.checked_mul(mul).ok_or_else(|| format!("size {s:?} too large"))?;
    if !bytes.is_multiple_of(512) {
        return Err(format!("size {s:?} is not a whole number of sectors"));
    }
    Ok(bytes / 512)
}

/// Xen's `virtual-device` number for `xvd<letters>` (or a number as is).
pub fn vdev_number(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let letters = name.strip_prefix("xvd")?;
    if letters.is_empty() || letters.len() > 2 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    // Disk index: a..z = 0..25, then aa = 26, ab = 27 (like spreadsheet columns).
    let b = letters.as_bytes();
    let idx = match b {
        [c] => u32::from(c - b'a'),
        [c1, c2] => (u32::from(c1 - b'a') + 1) * 26 + u32::from(c2 - b'a'),
        _ => return None,
    };
    // xvda..xvdp fit the old encoding (major 202, 16 minors per disk); beyond, the extended.
    Some(if idx < 16 { (202 << 8) | (idx << 4) } else { (1 << 28) | (idx << 8) })
}

/// Parses one `disk=` entry.
pub fn parse(entry: &str) -> Result<VbdSpec, String> {
    let parts: alloc::vec::Vec<&str> = entry.split(',').map(str::trim).collect();
    let [target, vdev_name, access] = parts[..] else {
        return Err(format!("disk {entry:?}: want <target>,<vdev>,<access>"));
    };
    let target = target.strip_prefix("phy:").unwrap_or(target);
    let rest = target
        .strip_prefix("virtio")
        .ok_or_else(|| format!("disk {entry:?}: target is not virtioN"))?;
    let (index, region) = match rest.split_once('@') {
        Some((i, r)) => (i, Some(r)),
        None => (rest, None),
    };
    let disk = index.parse().map_err(|_| format!("disk {entry:?}: bad disk number {index:?}"))?;
    let (start, len) = match region {
        None => (0, None),
        Some(r) => match r.split_once('+') {
            Some((s, l)) => (sectors(s)?, Some(sectors(l)?)),
            None => (sectors(r)?, None),
        },
    };
    if len == Some(0) {
        return Err(format!("disk {entry:?}: empty region"));
    }
    let vdev = vdev_number(vdev_name).ok_or_else(|| format!("disk {entry:?}: bad vdev"))?;
    let writable = match access {
        "w" | "rw" => true,
        "r" | "ro" => false,
        _ => return Err(format!("disk {entry:?}: access is w or r")),
    };
    Ok(VbdSpec { disk, start, sectors: len, vdev_name: vdev_name.to_string(), vdev, writable })
}

impl VbdSpec {
    /// The region on a disk of `disk_sectors`, if it fits.
    pub fn region(&self, disk_sectors: u64) -> Result<Region, String> {
        let sectors = match self.sectors {
            Some(n) => n,
            None => disk_sectors.checked_sub(self.start).filter(|&n| n > 0).ok_or_else(|| {
                format!("region starts at {} past the disk's {disk_sectors} sectors", self.start)
            })?,
        };
        match self.start.checked_add(sectors) {
            Some(end) if end <= disk_sectors => Ok(Region { start: self.start, sectors }),
            _ => Err(format!(
                "region {}+{sectors} runs past the disk's {disk_sectors} sectors",
                self.start
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_disk() {
        let s = parse("phy:virtio0,xvda,w").unwrap();
        assert_eq!((s.disk, s.start, s.sectors, s.writable), (0, 0, None, true));
        assert_eq!(s.vdev, 51712);
        assert_eq!(s.region(1000).unwrap(), Region { start: 0, sectors: 1000 });
    }

    #[test]
    fn regions() {
        let s = parse("virtio1@1M+32M, xvdb, r").unwrap();
        assert_eq!((s.disk, s.start, s.sectors, s.writable), (1, 2048, Some(65536), false));
        assert_eq!(s.vdev, (202 << 8) | 16);
        assert_eq!(parse("virtio0@100+50,xvda,rw").unwrap().region(150).unwrap().sectors, 50);
        assert!(parse("virtio0@100+51,xvda,rw").unwrap().region(150).is_err());
        assert_eq!(parse("virtio0@100,xvda,w").unwrap().region(150).unwrap().sectors, 50);
        assert!(parse("virtio0@150,xvda,w").unwrap().region(150).is_err());
        assert!(parse("virtio0@1+0,xvda,w").is_err());
        assert!(parse("virtio0@1000,xvda,w").is_ok());
        assert!(parse("virtio0@100K+3,xvda,w").is_ok());
        assert!(parse("virtio0@1+100,xvda,w").is_ok());
    }

    #[test]
    fn bad_entries() {
        for e in [
            "virtio0,xvda",
            "file:/x.img,xvda,w",
            "virtioX,xvda,w",
            "virtio0,sda,w",
            "virtio0,xvda,x",
            "virtio0@1.5M,xvda,w",
            "virtio0@99999999999999999G,xvda,w",
        ] {
            assert!(parse(e).is_err(), "{e}");
        }
    }

    #[test]
    fn vdev_numbers() {
        assert_eq!(vdev_number("xvda"), Some(51712));
        assert_eq!(vdev_number("xvdp"), Some((202 << 8) | (15 << 4)));
        assert_eq!(vdev_number("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vdev_number("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vdev_number("51712"), Some(51712));
        assert_eq!(vdev_number("xvd"), None);
    }

    #[test]
    fn translation_stays_inside() {
        let r = Region { start: 100, sectors: 50 };
        assert_eq!(r.translate(0, 50), Some(100));
        assert_eq!(r.translate(49, 1), Some(149));
        assert_eq!(r.translate(49, 2), None);
        assert_eq!(r.translate(u64::MAX, 2), None);
    }
}
