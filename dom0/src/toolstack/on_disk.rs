//! Guest images and configurations on dom0's disks, where Xen's toolstack finds them in dom0's
//! filesystem. dom0 has no filesystem: a virtio disk that holds a newc cpio archive from its
//! first byte (what `cd guests && find . | cpio -o -H newc > guests.img` writes, the format of
//! dom0's ramdisk) is searched, disk by disk, for what the ramdisk does not have. Only headers
//! and names are read to find a file ([`archive::find_in`], through a 64 KiB
//! machine-contiguous buffer the disk reads into in place); a file found is read into dom0's
//! spare memory ([`memory::own`]), a configuration into the heap (at most [`CONFIG_MAX`]).
//!
//! A disk blkback serves to guests may hold an archive too: reading it here changes nothing
//! (blkback's requests are complete between its rounds, and the toolstack runs between them).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use spin::Mutex;

use super::archive::{self, Located};
use super::memory::{self, Region};
use crate::drivers::iobuf::IoBuf;
use crate::drivers::virtio::blk::Disk;

/// The read buffer: 64 KiB, the most the disk takes in one request here.
const CHUNK_PAGES: usize = 16;
const CHUNK: u64 = CHUNK_PAGES as u64 * 4096;
/// Largest configuration file read.
pub const CONFIG_MAX: u64 = 64 << 10;

/// The read buffer, made at the first use and kept: a machine-contiguous buffer's pages go
/// back one by one (`dma::free`), so making one per lookup would use up dom0's slack.
static BUF: Mutex<Option<IoBuf>> = Mutex::new(None);

/// Runs `f` with the read buffer.
fn with_buf<R>(f: impl FnOnce(&mut IoBuf) -> Result<R, String>) -> Result<R, String> {
    let mut b = BUF.lock();
    if b.is_none() {
        *b = IoBuf::new(CHUNK_PAGES);
    }
    f(b.as_mut().ok_or("no memory for a disk read buffer")?)
}

/// Byte-addressed reads of a disk through one cached chunk.
struct Reader<'d> {
    disk: &'d mut Disk,
    buf: &'d mut IoBuf,
    /// Which chunk the buffer holds, and how many of its bytes are the disk's.
    cached: Option<(u64, usize)>,
}

impl<'d> Reader<'d> {
    fn new(disk: &'d mut Disk, buf: &'d mut IoBuf) -> Self {
        Reader { disk, buf, cached: None }
    }

    fn len(&self) -> u64 {
        self.disk.sectors() * 512
    }

    /// Fills `out` from byte `offset` of the disk.
    fn read(&mut self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        let mut done = 0usize;
        while done < out.len() {
            let pos = offset + done as u64;
            let chunk = pos / CHUNK;
            let valid = match self.cached {
                Some((c, valid)) if c == chunk => valid,
                _ => {
                    let first = chunk * (CHUNK / 512);
                    let sectors = (CHUNK / 512).min(self.disk.sectors().saturating_sub(first));
                    if sectors == 0 {
                        return Err(format!("byte {pos} is past the end of the disk"));
                    }
                    let valid = (sectors * 512) as usize;
                    self.cached = None;
                    self.disk
                        .read(first, self.buf.bytes_mut(valid))
                        .map_err(|e| format!("disk read at sector {first}: {e:?}"))?;
                    self.cached = Some((chunk, valid));
                    valid
                }
            };
            let within = (pos % CHUNK) as usize;
            if within >= valid {
                return Err(format!("byte {pos} is past the end of the disk"));
            }
            let n = (out.len() - done).min(valid - within);
            out[done..done + n].copy_from_slice(&self.buf.bytes(valid)[within..within + n]);
            done += n;
        }
        Ok(())
    }
}

/// The file `name` of the first of `disks` holding an archive that has it: which disk and
/// where. Disks without an archive are passed over; a damaged archive is an error.
pub fn find(disks: &mut [Disk], name: &str) -> Result<Option<(usize, Located)>, String> {
    with_buf(|buf| {
        for (i, disk) in disks.iter_mut().enumerate() {
            let mut r = Reader::new(disk, buf);
            let mut magic = [0u8; 6];
            if r.read(0, &mut magic).is_err() || !archive::has_magic(&magic) {
                continue;
            }
            let len = r.len();
            match archive::find_in(len, name, |at, out| r.read(at, out)) {
                Ok(Some(at)) => return Ok(Some((i, at))),
                Ok(None) => {}
                Err(e) => return Err(format!("the archive on virtio{i}: {e}")),
            }
        }
        Ok(None)
    })
}

/// Reads the file at `at` of disk `disk` into dom0's spare memory: the region and the size.
pub fn load(disks: &mut [Disk], disk: usize, at: Located) -> Result<(Region, usize), String> {
    let d = disks.get_mut(disk).ok_or_else(|| format!("no virtio disk {disk}"))?;
    let size = usize::try_from(at.size).map_err(|_| String::from("file too large"))?;
    let mut region = memory::own(at.size.div_ceil(4096).max(1))?;
    with_buf(|buf| Reader::new(d, buf).read(at.offset, &mut region.bytes_mut()[..size]))?;
    Ok((region, size))
}

/// Reads the configuration file at `at` of disk `disk` (at most [`CONFIG_MAX`] bytes).
pub fn read_config(disks: &mut [Disk], disk: usize, at: Located) -> Result<Vec<u8>, String> {
    if at.size > CONFIG_MAX {
        return Err(format!("{} bytes: too large for a configuration", at.size));
    }
    let d = disks.get_mut(disk).ok_or_else(|| format!("no virtio disk {disk}"))?;
    let mut text = alloc::vec![0u8; at.size as usize];
    with_buf(|buf| Reader::new(d, buf).read(at.offset, &mut text))?;
    Ok(text)
}
