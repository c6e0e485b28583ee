//! `console_io`: the emergency console every PV guest has from its first instruction. dom0's
//! output goes to the serial line as it is (as on Xen); a domU's is gathered into lines and
//! prefixed with its name. Reading takes what the serial line has received (dom0 only).

use hypercall_abi::Errno;
use hypercall_abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use super::logging;
use core::fmt::Write;

use crate::arch::{serial, time, uaccess};
use crate::hypercall::{Hc, HcResult};

/// Bytes copied per chunk, and the most one call may write (longer writes are truncated to
/// this; the guest sees how much went out only through the console itself, as on Xen).
const CHUNK: usize = 256;
const MAX_WRITE: u64 = 64 * 1024;
/// A domU's partial line is flushed at this length (its buffer is made with the domain).
pub const MAX_CONSOLE_LINE: usize = 512;

pub fn console_io(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (cmd, count, buf) = (a[0] as u32, a[1], a[2]);
    match cmd {
        CONSOLEIO_WRITE => {
            let count = count.min(MAX_WRITE);
            let mut chunk = [0u8; CHUNK];
            let mut off = 0u64;
            while off < count {
                // A domU past its line rate: the rest would be dropped line by line anyway, so
                // it is not even read (the call stays short whatever the count).
                if !hc.dom.is_privileged && !hc.dom.console_limit.lock().has_tokens(time::now_ns())
                {
                    break;
                }
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
        // As Xen (without `console_to_ring`): dom0's own output is not kept in the log ring.
        logging::write_raw(bytes, false);
        return;
    }
    let mut line = hc.dom.console_line.lock();
    for &b in bytes {
        if b == b'\n' || line.len() >= MAX_CONSOLE_LINE {
            emit_line(hc, &line);
            line.clear();
            if b == b'\n' {
                continue;
            }
        }
        if b != b'\r' {
            // The buffer was made with room for a whole line: this never allocates.
            line.push(b);
        }
    }
}

/// Sends one line of a domU's to the serial log, prefixed with its id, within the domain's
/// line rate (a guest must not flood the console or hold the CPU writing to it); the first
/// line allowed after a pause says how many were dropped. Built on the stack: no allocation.
fn emit_line(hc: &Hc<'_>, line: &[u8]) {
    let dropped = {
        let mut limit = hc.dom.console_limit.lock();
        if !limit.allow(time::now_ns()) {
            return;
        }
        limit.take_suppressed()
    };
    if dropped > 0 {
        emit(hc, |w| {
            let _ = write!(w, "[{dropped} lines dropped: console rate limit]");
        });
    }
    // Only printable bytes reach the serial line: a guest must not drive the terminal.
    emit(hc, |w| {
        for &b in line.iter().take(MAX_CONSOLE_LINE) {
            w.push(if b == b'\t' || (0x20..0x7f).contains(&b) { b } else { b'?' });
        }
    });
}

fn emit(hc: &Hc<'_>, body: impl FnOnce(&mut Cursor<'_>)) {
    let mut out = [0u8; MAX_CONSOLE_LINE + 64];
    let mut w = Cursor { buf: &mut out, len: 0 };
    let _ = write!(w, "(d{}) ", hc.dom.id.0);
    body(&mut w);
    w.push(b'\n');
    let len = w.len;
    logging::write_raw(&out[..len], true);
}

/// A byte buffer on the stack that drops what does not fit.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(|b| self.push(b));
        Ok(())
    }
}
