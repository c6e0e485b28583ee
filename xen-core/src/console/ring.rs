//! The hypervisor's log ring (Xen's `conring`): the last [`LOG_RING_SIZE`] bytes the console
//! printed, kept so dom0's toolstack can read them back through `XEN_SYSCTL_readconsole`
//! (`xl dmesg`). Positions are free-running 32-bit counters as in Xen: a reader gets the
//! position after what it read and may continue from there (`incremental`); a clear moves the
//! point ordinary reads start from.
//!
//! Hardware-free and host-tested; `logging` feeds it and the sysctl reads it.

/// Bytes kept (Xen's default `conring_size`).
pub const LOG_RING_SIZE: usize = 16 << 10;

/// A byte ring of the last `N` bytes written.
pub struct LogRing<const N: usize> {
    data: [u8; N],
    /// Bytes ever written (wrapping).
    prod: u32,
    /// Where a non-incremental read starts (moved by a clear).
    start: u32,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    pub const fn new() -> Self {
        assert!(N.is_power_of_two() && N <= 1 << 30);
        LogRing { data: [0; N], prod: 0, start: 0 }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.data[self.prod as usize & (N - 1)] = b;
            self.prod = self.prod.wrapping_add(1);
        }
    }

    /// Copies into `out` from the oldest byte kept after the clear point (or from `from`, if
    /// later and given); returns (bytes copied, the position after them). A `from` past the
    /// end or older than what is kept is clamped, as Xen clamps it.
    pub fn read(&self, from: Option<u32>, out: &mut [u8]) -> (usize, u32) {
        let mut c = self.start;
        if let Some(f) = from
            && (f.wrapping_sub(c) as i32) > 0
        {
            c = f;
        }
        if (self.prod.wrapping_sub(c) as i32) < 0 {
            c = self.prod;
        }
        if self.prod.wrapping_sub(c) as usize > N {
            c = self.prod.wrapping_sub(N as u32);
        }
        let mut n = 0;
        while c != self.prod && n < out.len() {
            out[n] = self.data[c as usize & (N - 1)];
            c = c.wrapping_add(1);
            n += 1;
        }
        (n, c)
    }

    /// Later ordinary reads start after what has been written so far.
    pub fn clear(&mut self) {
        self.start = self.prod;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &LogRing<16>, from: Option<u32>) -> (Vec<u8>, u32) {
        let mut out = [0u8; 64];
        let (n, next) = r.read(from, &mut out);
        (out[..n].to_vec(), next)
    }

    #[test]
    fn keeps_the_last_n_bytes() {
        let mut r = LogRing::<16>::new();
        r.write(b"hello ");
        assert_eq!(read_all(&r, None), (b"hello ".to_vec(), 6));
        r.write(b"world, this is long");
        let (got, next) = read_all(&r, None);
        assert_eq!(got, b"ld, this is long");
        assert_eq!(next, 25);
    }

    #[test]
    fn incremental_reads_continue_and_clear_moves_the_start() {
        let mut r = LogRing::<16>::new();
        r.write(b"abc");
        let (_, at) = read_all(&r, None);
        r.write(b"def");
        assert_eq!(read_all(&r, Some(at)), (b"def".to_vec(), 6));
        // A position from the future is clamped to the end; one before the start to it.
        assert_eq!(read_all(&r, Some(100)).0, b"");
        r.clear();
        assert_eq!(read_all(&r, None).0, b"");
        assert_eq!(read_all(&r, Some(0)).0, b"", "a clear also bounds incremental reads");
        r.write(b"g");
        assert_eq!(read_all(&r, None), (b"g".to_vec(), 7));
    }

    #[test]
    fn a_small_buffer_reads_in_pieces() {
        let mut r = LogRing::<16>::new();
        r.write(b"0123456789");
        let mut out = [0u8; 4];
        let (mut at, mut all) = (None, Vec::new());
        loop {
            let (n, next) = r.read(at, &mut out);
            if n == 0 {
                break;
            }
            all.extend_from_slice(&out[..n]);
            at = Some(next);
        }
        assert_eq!(all, b"0123456789");
    }

    #[test]
    fn positions_wrap() {
        let mut r = LogRing::<16>::new();
        r.prod = u32::MAX - 2;
        r.start = r.prod;
        r.write(b"wrap!");
        assert_eq!(read_all(&r, None), (b"wrap!".to_vec(), 2));
    }
}
