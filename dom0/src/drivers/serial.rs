//! The serial line dom0 reads its input from. The machine's UART belongs to the hypervisor
//! (its own log goes there); as Xen does, it passes what is typed to dom0 through `console_io`
//! (`CONSOLEIO_read`), which makes it dom0's console device. This driver takes what has
//! arrived and assembles whole lines: a line ends at CR or LF, and at most [`MAX_INPUT_LINE`]
//! bytes of one are kept, so input without line ends cannot grow dom0's memory. Where a line
//! goes is the services' decision (`backends::console` routes it).
//!
//! [`LineReader`] needs no hardware and is tested on the host.

use alloc::vec::Vec;

/// Bytes of an input line kept; the rest of a longer line is dropped.
pub const MAX_INPUT_LINE: usize = 1024;

/// Assembles input bytes into lines.
#[derive(Debug, Default)]
pub struct LineReader {
    partial: Vec<u8>,
}

impl LineReader {
    /// Takes `bytes`, calling `on_line` with each line they complete (without its CR or LF;
    /// CR LF ends one line and starts an empty one, as a terminal sends it).
    pub fn feed(&mut self, bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                let line = core::mem::take(&mut self.partial);
                on_line(&line);
            } else if self.partial.len() < MAX_INPUT_LINE {
                self.partial.push(b);
            }
        }
    }
}

/// dom0's serial input.
#[cfg(target_os = "none")]
#[derive(Debug, Default)]
pub struct Serial {
    lines: LineReader,
}

#[cfg(target_os = "none")]
impl Serial {
    /// Reads what has arrived (at most 64 bytes: the rest waits for the next round) and calls
    /// `on_line` with each line it completes.
    pub fn poll(&mut self, on_line: impl FnMut(&[u8])) {
        let mut buf = [0u8; 64];
        let n = match hypercall_abi::guest::console_io_read(&mut buf) {
            Ok(n) => n as usize,
            Err(_) => 0,
        };
        self.lines.feed(&buf[..n], on_line);
    }
}

/// Takes what the serial line has received, as it is (the shell edits lines itself); returns
/// how many bytes were put in `buf`.
#[cfg(target_os = "none")]
pub fn read_raw(buf: &mut [u8]) -> usize {
    hypercall_abi::guest::console_io_read(buf).map_or(0, |n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &mut LineReader, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        r.feed(bytes, |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn a_line_ends_at_cr_or_lf_and_may_span_reads() {
        let mut r = LineReader::default();
        assert!(lines(&mut r, b"rou").is_empty());
        assert_eq!(lines(&mut r, b"te 1\rhello\n"), [b"route 1".to_vec(), b"hello".to_vec()]);
        assert_eq!(lines(&mut r, b"a\r\n"), [b"a".to_vec(), Vec::new()]);
    }

    #[test]
    fn a_line_without_an_end_is_capped() {
        let mut r = LineReader::default();
        assert!(lines(&mut r, &[b'x'; 3000]).is_empty());
        let got = lines(&mut r, b"yz\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), MAX_INPUT_LINE);
        assert!(got[0].iter().all(|&b| b == b'x'));
    }
}
