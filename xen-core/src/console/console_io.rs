//! `console_io`: the emergency console every PV guest has from its first instruction. dom0's
//! output goes to the serial line as it is (as on Xen); a domU's is gathered into lines and
//! prefixed with its name. Reading takes what the serial line has received (dom0 only).

use hypercall_abi::Errno;
use hypercall_abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use super::logging;
use crate::arch::{serial, uaccess};
use crate::hypercall::{Hc, HcResult};

/// Bytes copied per chunk, and the most one call may write (longer writes are truncated to
/// this; the guest sees how much went out only through the console itself, as on Xen).
const CHUNK: usize = 256;
const MAX_WRITE: u64 = 64 * 1024;
/// A domU's partial line is flushed at this length.
const MAX_LINE: usize = 512;

pub fn console_io(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (cmd, count, buf) = (a[0] as u32, a[1], a[2]);
    match cmd {
        CONSOLEIO_WRITE => {
            let count = count.min(MAX_WRITE);
            let mut chunk = [0u8; CHUNK];
            let mut off = 0u64;
            while off < count {
                let n = (count - off).min(CHUNK as u64) as usize;
                uaccess::copy_from_guest(&mut chunk[..n], buf + off)?;
                write_out(hc, &chunk[..n]);
                off += n as u64;
            }
            Ok(Some(0))
        }
        CONSOLEIO_READ => {
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            let mut got = [0u8; CHUNK];
            let want = count.min(CHUNK as u64) as usize;
            let mut n = 0;
            while n < want {
                match serial::try_read() {
                    Some(b) => {
                        got[n] = b;
                        n += 1;
                    }
                    None => break,
                }
            }
            uaccess::copy_to_guest(buf, &got[..n])?;
            Ok(Some(n as u64))
        }
        _ => Err(Errno::ENOSYS),
    }
}

fn write_out(hc: &Hc<'_>, bytes: &[u8]) {
    if hc.dom.is_privileged {
        logging::write_raw(bytes);
        return;
    }
    let mut line = hc.dom.console_line.lock();
    for &b in bytes {
        if b == b'\n' || line.len() >= MAX_LINE {
            emit_line(hc, &line);
            line.clear();
            if b == b'\n' {
                continue;
            }
        }
        if b != b'\r' {
            line.push(b);
        }
    }
}

fn emit_line(hc: &Hc<'_>, line: &[u8]) {
    let mut out = alloc::vec::Vec::with_capacity(line.len() + 24);
    out.extend_from_slice(alloc::format!("(d{}) ", hc.dom.id.0).as_bytes());
    // Only printable bytes reach the serial line: a guest must not drive the terminal.
    out.extend(
        line.iter().map(|&b| if b == b'\t' || (0x20..0x7f).contains(&b) { b } else { b'?' }),
    );
    out.push(b'\n');
    logging::write_raw(&out);
}
