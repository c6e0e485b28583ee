//! Decoding the few x86-64 instructions the hypervisor emulates for a PV guest: the memory
//! writes a kernel makes to its own page tables (`ptwr`) and the privileged instructions it
//! executes in ring 3 (`privop`). The bytes are the guest's, copied once; anything outside the
//! small set below, and every prefix combination the emulators do not handle, decodes to
//! `None` (the guest then gets the fault the CPU raised).
//!
//! Accepted prefixes: `lock` (F0), operand size (66), an ES/CS/SS/DS override (ignored in
//! 64-bit mode), one REX (40-4F) right before the opcode; at most one of each. FS/GS
//! overrides, `rep`/`repne`, address size (67) and anything else are refused. Hardware-free,
//! host-tested.

/// Longest instruction the CPU accepts (and the most bytes ever read).
pub const MAX_LEN: usize = 15;

/// A general-purpose register file in encoding order: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
/// r8-r15.
pub type Gprs = [u64; 16];

/// An opcode: one byte, or `0F xx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    One(u8),
    Two(u8),
}

/// A memory operand, as encoded: `[base + index * scale + disp]` or `[rip + disp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    pub base: Option<u8>,
    pub index: Option<u8>,
    pub scale: u8,
    pub disp: i64,
    pub rip_relative: bool,
}

/// The r/m operand of a ModRM byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rm {
    Reg(u8),
    Mem(Mem),
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub lock: bool,
    pub opsize: bool,
    /// The REX byte, 0 when there is none.
    pub rex: u8,
    pub opcode: Opcode,
    /// ModRM's reg field (with REX.R), for instructions that have one.
    pub reg: u8,
    pub rm: Option<Rm>,
    /// The immediate, zero-extended from its encoded width (`imm_len` bytes).
    pub imm: u64,
    pub imm_len: u8,
    /// Total length in bytes.
    pub len: u8,
}

impl Insn {
    pub fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }

    /// Operand size of a non-byte form: 8 with REX.W, else 2 with 66, else 4.
    pub fn wide_size(&self) -> u8 {
        if self.rex_w() {
            8
        } else if self.opsize {
            2
        } else {
            4
        }
    }

    /// The effective address of the memory operand, if it has one; `rip` is the instruction's.
    pub fn address(&self, gprs: &Gprs, rip: u64) -> Option<u64> {
        let Some(Rm::Mem(m)) = self.rm else { return None };
        let mut ea = m.disp as u64;
        if m.rip_relative {
            ea = ea.wrapping_add(rip.wrapping_add(u64::from(self.len)));
        }
        if let Some(b) = m.base {
            ea = ea.wrapping_add(gprs[usize::from(b)]);
        }
        if let Some(i) = m.index {
            ea = ea.wrapping_add(gprs[usize::from(i)] << m.scale);
        }
        Some(ea)
    }
}

/// What follows an opcode the decoder knows: a ModRM byte and an immediate of some width.
#[derive(Clone, Copy)]
struct Form {
    modrm: bool,
    /// Immediate: 0, 1, or "4 (2 with 66)" written as 4.
    imm: u8,
}

const fn form(modrm: bool, imm: u8) -> Option<Form> {
    Some(Form { modrm, imm })
}

/// The one-byte opcodes the emulators handle.
fn one_byte(op: u8) -> Option<Form> {
    match op {
        // or, and (r/m, r); mov (r/m, r); xchg (r/m, r)
        0x08 | 0x09 | 0x20 | 0x21 | 0x88 | 0x89 | 0x86 | 0x87 => form(true, 0),
        // group 1 with imm8 (byte), imm32 (wide), imm8 sign-extended (wide)
        0x80 | 0x83 => form(true, 1),
        0x81 => form(true, 4),
        // mov r/m8, imm8; mov r/m, imm32
        0xC6 => form(true, 1),
        0xC7 => form(true, 4),
        // in/out with an immediate port; in/out with dx; cli, sti
        0xE4..=0xE7 => form(false, 1),
        0xEC..=0xEF | 0xFA | 0xFB => form(false, 0),
        _ => None,
    }
}

/// The two-byte (`0F xx`) opcodes the emulators handle.
fn two_byte(op: u8) -> Option<Form> {
    match op {
        // clts, wbinvd, wrmsr, rdtsc, rdmsr
        0x06 | 0x09 | 0x30..=0x32 => form(false, 0),
        // mov from/to control and debug registers
        0x20..=0x23 => form(true, 0),
        // bts r/m, r; btr r/m, r; cmpxchg r/m8, r8; cmpxchg r/m, r
        0xAB | 0xB3 | 0xB0 | 0xB1 => form(true, 0),
        // group 8 (bt/bts/btr/btc r/m, imm8)
        0xBA => form(true, 1),
        _ => None,
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        (self.at <= MAX_LEN).then_some(b)
    }

    fn le(&mut self, n: usize) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        Some(v)
    }
}

/// Decodes the instruction at the start of `bytes` (the guest's bytes at its rip, at most
/// [`MAX_LEN`] of them; fewer if the rest was unreadable). `None` if it is not one the
/// emulators handle, or it runs past the bytes given.
pub fn decode(bytes: &[u8]) -> Option<Insn> {
    let mut c = Cursor { bytes, at: 0 };
    let (mut lock, mut opsize, mut seg, mut rex) = (false, false, false, 0u8);
    let mut b = c.byte()?;
    loop {
        match b {
            0xF0 if !lock && rex == 0 => lock = true,
            0x66 if !opsize && rex == 0 => opsize = true,
            // ES, CS, SS, DS overrides mean nothing in 64-bit mode (Linux patches its `lock`
            // prefixes into DS on a uniprocessor: `3e 80 24 ...` clears a PTE bit).
            0x26 | 0x2E | 0x36 | 0x3E if !seg && rex == 0 => seg = true,
            0x40..=0x4F if rex == 0 => rex = b,
            _ => break,
        }
        b = c.byte()?;
    }
    let (opcode, f) = if b == 0x0F {
        let op = c.byte()?;
        (Opcode::Two(op), two_byte(op)?)
    } else {
        (Opcode::One(b), one_byte(b)?)
    };
    let (mut reg, mut rm) = (0, None);
    if f.modrm {
        let m = c.byte()?;
        let (md, r, low) = (m >> 6, (m >> 3) & 7, m & 7);
        reg = r | ((rex & 4) << 1);
        rm = Some(if md == 3 {
            Rm::Reg(low | ((rex & 1) << 3))
        } else {
            Rm::Mem(memory_operand(&mut c, md, low, rex)?)
        });
    }
    let imm_len = match f.imm {
        4 if opsize && !matches!(opcode, Opcode::One(0xE4..=0xE7)) => 2,
        n => n,
    };
    let imm = c.le(usize::from(imm_len))?;
    Some(Insn { lock, opsize, rex, opcode, reg, rm, imm, imm_len, len: c.at as u8 })
}

/// The memory form of ModRM (`md` 0-2) with its SIB byte and displacement.
fn memory_operand(c: &mut Cursor<'_>, md: u8, low: u8, rex: u8) -> Option<Mem> {
    let mut m = Mem { base: None, index: None, scale: 0, disp: 0, rip_relative: false };
    if low == 4 {
        let sib = c.byte()?;
        let (scale, index, base) = (sib >> 6, ((sib >> 3) & 7) | ((rex & 2) << 2), sib & 7);
        m.scale = scale;
        // Index 100b without REX.X means "no index".
        m.index = (index != 4).then_some(index);
        if base == 5 && md == 0 {
            m.disp = c.le(4)? as u32 as i32 as i64;
            return Some(m);
        }
        m.base = Some(base | ((rex & 1) << 3));
    } else if low == 5 && md == 0 {
        m.rip_relative = true;
        m.disp = c.le(4)? as u32 as i32 as i64;
        return Some(m);
    } else {
        m.base = Some(low | ((rex & 1) << 3));
    }
    m.disp = match md {
        1 => c.le(1)? as u8 as i8 as i64,
        2 => c.le(4)? as u32 as i32 as i64,
        _ => 0,
    };
    Some(m)
}

/// Reads register `r` at `size` bytes. Byte registers 4-7 without a REX prefix are the legacy
/// high bytes (ah, ch, dh, bh).
pub fn read_reg(gprs: &Gprs, r: u8, size: u8, rex: u8) -> u64 {
    let r = usize::from(r);
    match size {
        1 if rex == 0 && (4..8).contains(&r) => (gprs[r - 4] >> 8) & 0xFF,
        8 => gprs[r],
        s => gprs[r] & mask(s),
    }
}

/// Writes `v` to register `r` at `size` bytes as the CPU does: a 32-bit write zeroes the upper
/// half, 8- and 16-bit writes keep the other bits.
pub fn write_reg(gprs: &mut Gprs, r: u8, size: u8, rex: u8, v: u64) {
    let r = usize::from(r);
    match size {
        1 if rex == 0 && (4..8).contains(&r) => {
            gprs[r - 4] = (gprs[r - 4] & !0xFF00) | ((v & 0xFF) << 8);
        }
        4 => gprs[r] = v & 0xFFFF_FFFF,
        8 => gprs[r] = v,
        s => gprs[r] = (gprs[r] & !mask(s)) | (v & mask(s)),
    }
}

/// The low `size` bytes.
pub fn mask(size: u8) -> u64 {
    if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(base: Option<u8>, index: Option<u8>, scale: u8, disp: i64) -> Option<Rm> {
        Some(Rm::Mem(Mem { base, index, scale, disp, rip_relative: false }))
    }

    #[test]
    fn mov_store_forms() {
        // mov [rdi], rsi
        let i = decode(&[0x48, 0x89, 0x37]).unwrap();
        assert_eq!(
            (i.opcode, i.reg, i.rm, i.len),
            (Opcode::One(0x89), 6, mem(Some(7), None, 0, 0), 3)
        );
        assert_eq!(i.wide_size(), 8);
        // mov qword [rax + 8], -1 (imm32)
        let i = decode(&[0x48, 0xC7, 0x40, 0x08, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!((i.rm, i.imm, i.imm_len, i.len), (mem(Some(0), None, 0, 8), 0xFFFF_FFFF, 4, 8));
        // mov [r12 + r13*8 - 16], r9 (SIB, REX.RXB, disp8)
        let i = decode(&[0x4F, 0x89, 0x4C, 0xEC, 0xF0]).unwrap();
        assert_eq!((i.reg, i.rm), (9, mem(Some(12), Some(13), 3, -16)));
        // mov [rip + 0x100], eax
        let i = decode(&[0x89, 0x05, 0x00, 0x01, 0, 0]).unwrap();
        assert_eq!(i.address(&[0; 16], 0x1000), Some(0x1000 + 6 + 0x100));
        // mov [0x1234] via SIB without base, disp32
        let i = decode(&[0x89, 0x04, 0x25, 0x34, 0x12, 0, 0]).unwrap();
        assert_eq!(i.rm, mem(None, None, 0, 0x1234));
        // mov [rbp], rax needs disp8 = 0: mod 01, rm 101
        let i = decode(&[0x48, 0x89, 0x45, 0x00]).unwrap();
        assert_eq!((i.rm, i.len), (mem(Some(5), None, 0, 0), 4));
        // mov word [rax], 0x1234 (66 shrinks imm32 to imm16)
        let i = decode(&[0x66, 0xC7, 0x00, 0x34, 0x12]).unwrap();
        assert_eq!((i.imm, i.len, i.wide_size()), (0x1234, 5, 2));
    }

    #[test]
    fn locked_and_bit_forms() {
        // lock andb $0xfd, (rdi)
        let i = decode(&[0xF0, 0x80, 0x27, 0xFD]).unwrap();
        assert!(i.lock);
        assert_eq!((i.opcode, i.reg, i.imm, i.len), (Opcode::One(0x80), 4, 0xFD, 4));
        // lock btr $5, (rdi) as btrq
        let i = decode(&[0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05]).unwrap();
        assert_eq!((i.opcode, i.reg, i.imm, i.len), (Opcode::Two(0xBA), 6, 5, 6));
        // lock cmpxchg [rdx], rcx
        let i = decode(&[0xF0, 0x48, 0x0F, 0xB1, 0x0A]).unwrap();
        assert_eq!((i.opcode, i.reg, i.rm), (Opcode::Two(0xB1), 1, mem(Some(2), None, 0, 0)));
        // mov rax, cr4 / mov dr7, rax: register forms
        let i = decode(&[0x0F, 0x20, 0xE0]).unwrap();
        assert_eq!((i.reg, i.rm), (4, Some(Rm::Reg(0))));
        let i = decode(&[0x41, 0x0F, 0x23, 0xF8]).unwrap();
        assert_eq!((i.reg, i.rm), (7, Some(Rm::Reg(8))));
    }

    #[test]
    fn port_io_immediates() {
        assert_eq!(decode(&[0xE4, 0x60]).unwrap().imm, 0x60);
        // 66 does not widen an 8-bit port number.
        let i = decode(&[0x66, 0xE5, 0x70]).unwrap();
        assert_eq!((i.imm, i.len), (0x70, 3));
        assert_eq!(decode(&[0xEC]).unwrap().len, 1);
    }

    #[test]
    fn null_segment_overrides_are_ignored() {
        // Linux on one CPU: `lock` patched to DS, `and byte [r12], 0xfd` (clears RW).
        let i = decode(&[0x3E, 0x41, 0x80, 0x24, 0x24, 0xFD]).unwrap();
        assert_eq!(i.len, 6);
        assert_eq!(decode(&[0x2E, 0x48, 0x89, 0x37]).unwrap().len, 4);
    }

    #[test]
    fn refused_prefixes_and_opcodes() {
        // FS/GS overrides, rep, address size, duplicated prefixes, REX not last
        for bytes in [
            &[0x65, 0x48, 0x89, 0x37][..],
            &[0x64, 0x48, 0x89, 0x37],
            &[0x3E, 0x3E, 0x48, 0x89, 0x37],
            &[0x48, 0x3E, 0x89, 0x37],
            &[0xF3, 0x48, 0x89, 0x37],
            &[0xF2, 0x48, 0x89, 0x37],
            &[0x67, 0x48, 0x89, 0x37],
            &[0xF0, 0xF0, 0x80, 0x27, 0xFD],
            &[0x66, 0x66, 0x89, 0x37],
            &[0x48, 0x48, 0x89, 0x37],
            &[0x48, 0xF0, 0x21, 0x37],
            &[0x48, 0x66, 0x89, 0x37],
        ] {
            assert_eq!(decode(bytes), None, "{bytes:x?}");
        }
        // add, sub, xor, movs, push: not emulated
        for bytes in
            [&[0x48, 0x01, 0x37][..], &[0x48, 0x29, 0x37], &[0x48, 0x31, 0x37], &[0xA5], &[0x50]]
        {
            assert_eq!(decode(bytes), None, "{bytes:x?}");
        }
        // 0F xx outside the set (ud2, cpuid, hlt-like, bt without a write)
        for bytes in [&[0x0F, 0x0B][..], &[0x0F, 0xA2], &[0x0F, 0xA3, 0x07], &[0xF4]] {
            assert_eq!(decode(bytes), None, "{bytes:x?}");
        }
    }

    #[test]
    fn truncated_and_overlong() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x48, 0x89]), None);
        assert_eq!(decode(&[0x48, 0xC7, 0x00, 0xFF, 0xFF]), None);
        assert_eq!(decode(&[0x89, 0x04]), None);
        // The longest encoding of a supported form still fits in 15 bytes.
        let long = [0xF0, 0x66, 0x48, 0x0F, 0xBA, 0xB4, 0x24, 1, 2, 3, 4, 5];
        assert_eq!(decode(&long).unwrap().len, 12);
    }

    #[test]
    fn byte_registers() {
        let mut g: Gprs = [0; 16];
        g[0] = 0x1122_3344_5566_7788;
        assert_eq!(read_reg(&g, 4, 1, 0), 0x77); // ah
        assert_eq!(read_reg(&g, 0, 1, 0), 0x88); // al
        g[6] = 0xAB;
        assert_eq!(read_reg(&g, 6, 1, 0x40), 0xAB); // sil with REX
        write_reg(&mut g, 4, 1, 0, 0xEE); // ah
        assert_eq!(g[0], 0x1122_3344_5566_EE88);
        write_reg(&mut g, 0, 4, 0, 0xFFFF_FFFF_0000_0001);
        assert_eq!(g[0], 1);
        write_reg(&mut g, 0, 2, 0, 0xABCD);
        assert_eq!(g[0], 0xABCD);
    }
}
