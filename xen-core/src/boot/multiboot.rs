//! Reading the multiboot1 information structure the loader leaves in memory: the hypervisor's
//! command line, the memory map and the modules (module 0 = dom0 kernel, module 1 = its
//! ramdisk, as Xen uses them). Everything is read through a [`PhysRead`] accessor, so the
//! parser is tested on the host and never trusts a pointer it was given: lengths are clamped.

use alloc::string::String;
use alloc::vec::Vec;

/// Reads physical memory for the parser.
pub trait PhysRead {
    /// Copies `buf.len()` bytes at physical address `addr`; `false` if out of range.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// A RAM or reserved range from the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    pub start: u64,
    pub len: u64,
    /// Multiboot type: 1 = usable RAM.
    pub kind: u32,
}

/// A boot module: its bytes are at `[start, end)`; `cmdline` as the loader gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub cmdline: String,
}

/// What the hypervisor needs from the multiboot information.
#[derive(Clone, Debug, Default)]
pub struct BootInfo {
    pub cmdline: String,
    pub mem_lower_kib: u32,
    pub mem_upper_kib: u32,
    pub memory_map: Vec<MemRegion>,
    pub modules: Vec<Module>,
}

/// Why the information could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Unreadable(u64),
    NoMemoryInfo,
}

const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
/// Bounds on what a loader can make us read.
const MAX_MODULES: u32 = 64;
const MAX_MMAP_BYTES: u32 = 64 * 1024;
const MAX_STRING: usize = 4096;

fn read_u32(mem: &impl PhysRead, addr: u64) -> Result<u32, Error> {
    let mut b = [0u8; 4];
    if mem.read(addr, &mut b) { Ok(u32::from_le_bytes(b)) } else { Err(Error::Unreadable(addr)) }
}

fn read_u64(mem: &impl PhysRead, addr: u64) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    if mem.read(addr, &mut b) { Ok(u64::from_le_bytes(b)) } else { Err(Error::Unreadable(addr)) }
}

/// Reads a NUL-terminated string of at most [`MAX_STRING`] bytes, lossily as UTF-8.
fn read_cstr(mem: &impl PhysRead, addr: u64) -> Result<String, Error> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while bytes.len() < MAX_STRING {
        if !mem.read(addr + bytes.len() as u64, &mut byte) {
            return Err(Error::Unreadable(addr));
        }
        if byte[0] == 0 {
            break;
        }
        bytes.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Parses the multiboot1 information at physical address `mbi`.
pub fn parse(mem: &impl PhysRead, mbi: u64) -> Result<BootInfo, Error> {
    let flags = read_u32(mem, mbi)?;
    let mut info = BootInfo::default();
    if flags & FLAG_MEM != 0 {
        info.mem_lower_kib = read_u32(mem, mbi + 4)?;
        info.mem_upper_kib = read_u32(mem, mbi + 8)?;
    }
    if flags & FLAG_CMDLINE != 0 {
        info.cmdline = read_cstr(mem, u64::from(read_u32(mem, mbi + 16)?))?;
    }
    if flags & FLAG_MODS != 0 {
        let count = read_u32(mem, mbi + 20)?.min(MAX_MODULES);
        let base = u64::from(read_u32(mem, mbi + 24)?);
        for i in 0..u64::from(count) {
            let entry = base + i * 16;
            let start = u64::from(read_u32(mem, entry)?);
            let end = u64::from(read_u32(mem, entry + 4)?).max(start);
            let string = read_u32(mem, entry + 8)?;
            let cmdline = if string == 0 { String::new() } else { read_cstr(mem, string.into())? };
            info.modules.push(Module { start, end, cmdline });
        }
    }
    if flags & FLAG_MMAP != 0 {
        let len = read_u32(mem, mbi + 44)?.min(MAX_MMAP_BYTES);
        let base = u64::from(read_u32(mem, mbi + 48)?);
        let mut off = 0u64;
        // Each entry is preceded by its own size (which excludes the size field itself).
        while off + 24 <= u64::from(len) {
            let size = read_u32(mem, base + off)?;
            let start = read_u64(mem, base + off + 4)?;
            let region_len = read_u64(mem, base + off + 12)?;
            let kind = read_u32(mem, base + off + 20)?;
            info.memory_map.push(MemRegion { start, len: region_len, kind });
            off += u64::from(size.max(20)) + 4;
        }
    } else if flags & FLAG_MEM != 0 {
        info.memory_map.push(MemRegion {
            start: 0,
            len: u64::from(info.mem_lower_kib) << 10,
            kind: 1,
        });
        info.memory_map.push(MemRegion {
            start: 1 << 20,
            len: u64::from(info.mem_upper_kib) << 10,
            kind: 1,
        });
    } else {
        return Err(Error::NoMemoryInfo);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<u8>);
    impl PhysRead for Fake {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let a = addr as usize;
            match self.0.get(a..a + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn put32(m: &mut [u8], at: usize, v: u32) {
        m[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put64(m: &mut [u8], at: usize, v: u64) {
        m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn parses_modules_cmdline_and_map() {
        let mut m = vec![0u8; 4096];
        put32(&mut m, 0, FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP);
        put32(&mut m, 16, 0x200);
        m[0x200..0x20c].copy_from_slice(b"loglvl=all\0\0");
        put32(&mut m, 20, 2);
        put32(&mut m, 24, 0x300);
        put32(&mut m, 0x300, 0x100000);
        put32(&mut m, 0x304, 0x180000);
        put32(&mut m, 0x308, 0x400);
        put32(&mut m, 0x310, 0x180000);
        put32(&mut m, 0x314, 0x170000); // end < start: clamped
        m[0x400..0x40f].copy_from_slice(b"dom0 console=1\0");
        put32(&mut m, 44, 48);
        put32(&mut m, 48, 0x500);
        put32(&mut m, 0x500, 20);
        put64(&mut m, 0x504, 0);
        put64(&mut m, 0x50c, 0x9fc00);
        put32(&mut m, 0x514, 1);
        put32(&mut m, 0x518, 20);
        put64(&mut m, 0x51c, 0x100000);
        put64(&mut m, 0x524, 0x3ff00000);
        put32(&mut m, 0x52c, 1);
        let info = parse(&Fake(m), 0).unwrap();
        assert_eq!(info.cmdline, "loglvl=all");
        assert_eq!(info.modules.len(), 2);
        assert_eq!(info.modules[0].cmdline, "dom0 console=1");
        assert_eq!(info.modules[1].start, info.modules[1].end);
        assert_eq!(info.memory_map[1], MemRegion { start: 0x100000, len: 0x3ff00000, kind: 1 });
    }

    #[test]
    fn bad_pointers_are_errors() {
        let mut m = vec![0u8; 64];
        put32(&mut m, 0, FLAG_CMDLINE);
        put32(&mut m, 16, 0xFFFF_0000);
        assert_eq!(parse(&Fake(m), 0).unwrap_err(), Error::Unreadable(0xFFFF_0000));
        assert!(parse(&Fake(vec![0u8; 64]), 0).is_err());
    }
}
