//! The arithmetic flags an emulated instruction leaves in RFLAGS, computed as the CPU does:
//! logical operations (`and`, `or`: CF and OF clear, SF/ZF/PF from the result, AF cleared
//! as current CPUs leave it), bit tests (CF alone), and the subtraction `cmpxchg` compares
//! with (every arithmetic flag). Hardware-free, host-tested.

use super::decode::mask;

pub const CF: u64 = 1 << 0;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const OF: u64 = 1 << 11;
const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

fn sign(v: u64, size: u8) -> bool {
    (v >> (u32::from(size) * 8 - 1)) & 1 != 0
}

/// PF, ZF and SF of a `size`-byte result.
fn szp(r: u64, size: u8) -> u64 {
    let r = r & mask(size);
    let mut f = 0;
    if (r as u8).count_ones().is_multiple_of(2) {
        f |= PF;
    }
    if r == 0 {
        f |= ZF;
    }
    if sign(r, size) {
        f |= SF;
    }
    f
}

/// After `and`/`or` with result `r`.
pub fn logic(rflags: u64, r: u64, size: u8) -> u64 {
    (rflags & !ARITH) | szp(r, size)
}

/// After `bt*`: CF is the bit's old value; the other flags keep their values.
pub fn carry(rflags: u64, bit: bool) -> u64 {
    (rflags & !CF) | if bit { CF } else { 0 }
}

/// After computing `a - b` at `size` bytes (`cmp`, and so `cmpxchg`).
pub fn sub(rflags: u64, a: u64, b: u64, size: u8) -> u64 {
    let (a, b) = (a & mask(size), b & mask(size));
    let r = a.wrapping_sub(b) & mask(size);
    let mut f = szp(r, size);
    if a < b {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if sign(a, size) != sign(b, size) && sign(r, size) != sign(a, size) {
        f |= OF;
    }
    (rflags & !ARITH) | f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_flags() {
        assert_eq!(sub(0, 5, 5, 8), ZF | PF);
        assert_eq!(sub(0, 0, 1, 1), CF | SF | AF | PF); // 0xff: 8 bits set
        assert_eq!(sub(0, 0x80, 1, 1), OF | AF); // 0x7f: 7 bits set
        assert_eq!(sub(0, 1 << 63, 1, 8) & OF, OF);
        assert_eq!(sub(0, 0x1_0000_0000, 0, 4), ZF | PF); // upper bits ignored at size 4
        assert_eq!(sub(CF | OF | 2, 3, 1, 8), 2); // 2: one bit set, so no PF
    }

    #[test]
    fn logic_and_carry() {
        assert_eq!(logic(CF | OF | AF | 2, 0, 8), 2 | ZF | PF);
        assert_eq!(logic(0, 0x80, 1), SF);
        assert_eq!(logic(0, 0x8000, 1), ZF | PF); // only the low byte counts at size 1
        assert_eq!(carry(ZF | OF, true), ZF | OF | CF);
        assert_eq!(carry(CF, false), 0);
    }
}
