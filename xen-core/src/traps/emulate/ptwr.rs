//! Writable page tables, the pure half: what a guest kernel's write to one of its own
//! read-only L1 tables would have done. Given the decoded instruction, the registers and the
//! page-table entry the write lands in (read once), it computes the new entry and the register
//! and flag updates, exactly as the CPU would. Applying the entry (validated like
//! `mmu_update`) and committing the registers is the caller's (`fault`).
//!
//! Forms, as a kernel writes entries: `mov` (r/m <- r, r/m <- imm), `xchg`, `and`/`or`
//! (r/m <- r, imm8, imm32, imm8 sign-extended), `bts`/`btr` (imm8 and register bit offsets),
//! `cmpxchg`; byte, word, dword and qword sizes, `lock` where the CPU allows it. A sub-word
//! write is merged into the entry, as on Xen. The access must be naturally aligned and lie in
//! the page that faulted; anything else is refused and the guest gets its #PF. Hardware-free,
//! host-tested.

use super::decode::{Gprs, Insn, Opcode, Rm, mask, read_reg, write_reg};
use super::flags;

/// The operation on the destination, decoded once from the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `mov`: the value.
    Store(u64),
    /// `xchg` with a register.
    Xchg(u8),
    And(u64),
    Or(u64),
    /// `bts` (true) or `btr` (false) of a bit of the destination.
    BitSet(u8, bool),
    /// `cmpxchg` with a source register.
    Cmpxchg(u8),
}

/// A write the guest's instruction makes, before the old entry is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The guest virtual address written (the first byte).
    pub addr: u64,
    /// Bytes written: 1, 2, 4 or 8.
    pub size: u8,
    op: Op,
    insn: Insn,
}

/// Why a write is not emulated (the guest then takes its #PF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not one of the forms above, or a prefix the form does not take.
    Form,
    /// Misaligned, or not in the faulting page.
    Address,
}

/// What the instruction did, once the old entry is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The full new entry to store, or `None` when nothing is written (a failed `cmpxchg`).
    pub entry: Option<u64>,
    pub gprs: Gprs,
    pub rflags: u64,
}

/// The write `insn` makes with registers `gprs` at `rip`, if it is one of the forms above and
/// lands, naturally aligned, in the page of `fault_addr`.
pub fn plan(insn: &Insn, gprs: &Gprs, rip: u64, fault_addr: u64) -> Result<Write, Refused> {
    let Some(Rm::Mem(_)) = insn.rm else { return Err(Refused::Form) };
    let wide = insn.wide_size();
    let src = |size| read_reg(gprs, insn.reg, size, insn.rex);
    let signed_imm8 = insn.imm as u8 as i8 as i64 as u64;
    let signed_imm32 = insn.imm as u32 as i32 as i64 as u64;
    let imm_wide = if insn.imm_len == 2 { insn.imm } else { signed_imm32 };
    let (size, op, lockable) = match (insn.opcode, insn.reg & 7) {
        (Opcode::One(0x88), _) => (1, Op::Store(src(1)), false),
        (Opcode::One(0x89), _) => (wide, Op::Store(src(wide)), false),
        (Opcode::One(0xC6), 0) => (1, Op::Store(insn.imm), false),
        (Opcode::One(0xC7), 0) => (wide, Op::Store(imm_wide & mask(wide)), false),
        (Opcode::One(0x86), _) => (1, Op::Xchg(insn.reg), true),
        (Opcode::One(0x87), _) => (wide, Op::Xchg(insn.reg), true),
        (Opcode::One(0x20), _) => (1, Op::And(src(1)), true),
        (Opcode::One(0x21), _) => (wide, Op::And(src(wide)), true),
        (Opcode::One(0x08), _) => (1, Op::Or(src(1)), true),
        (Opcode::One(0x09), _) => (wide, Op::Or(src(wide)), true),
        (Opcode::One(0x80), 4) => (1, Op::And(insn.imm), true),
        (Opcode::One(0x80), 1) => (1, Op::Or(insn.imm), true),
        (Opcode::One(0x81), 4) => (wide, Op::And(imm_wide & mask(wide)), true),
        (Opcode::One(0x81), 1) => (wide, Op::Or(imm_wide & mask(wide)), true),
        (Opcode::One(0x83), 4) => (wide, Op::And(signed_imm8 & mask(wide)), true),
        (Opcode::One(0x83), 1) => (wide, Op::Or(signed_imm8 & mask(wide)), true),
        (Opcode::Two(0xB0), _) => (1, Op::Cmpxchg(insn.reg), true),
        (Opcode::Two(0xB1), _) => (wide, Op::Cmpxchg(insn.reg), true),
        (Opcode::Two(0xBA), r @ (5 | 6)) if wide != 2 => {
            let bit = (insn.imm as u32 % (u32::from(wide) * 8)) as u8;
            (wide, Op::BitSet(bit, r == 5), true)
        }
        (Opcode::Two(op @ (0xAB | 0xB3)), _) if wide != 2 => {
            // A register bit offset is signed and may address another word: the CPU writes
            // the operand-sized word at `ea + (offset >> log2(bits)) * size`.
            let bits = i64::from(wide) * 8;
            let offset = src(wide) as i64;
            let offset = if wide == 4 { offset as i32 as i64 } else { offset };
            let word = offset.div_euclid(bits);
            let bit = offset.rem_euclid(bits) as u8;
            let ea = insn.address(gprs, rip).ok_or(Refused::Form)?;
            let addr = ea.wrapping_add((word * i64::from(wide)) as u64);
            let op = Op::BitSet(bit, op == 0xAB);
            return checked(Write { addr, size: wide, op, insn: *insn }, fault_addr);
        }
        _ => return Err(Refused::Form),
    };
    if insn.lock && !lockable {
        return Err(Refused::Form);
    }
    let addr = insn.address(gprs, rip).ok_or(Refused::Form)?;
    checked(Write { addr, size, op, insn: *insn }, fault_addr)
}

fn checked(w: Write, fault_addr: u64) -> Result<Write, Refused> {
    if w.insn.lock && matches!(w.op, Op::Store(_)) {
        return Err(Refused::Form);
    }
    let aligned = w.addr.is_multiple_of(u64::from(w.size));
    if !aligned || (w.addr ^ fault_addr) >> 12 != 0 {
        return Err(Refused::Address);
    }
    Ok(w)
}

impl Write {
    /// The index of the 8-byte entry written, in its table.
    pub fn entry_index(&self) -> usize {
        ((self.addr & 0xFFF) >> 3) as usize
    }

    /// Carries the write out on the entry `old` (read once): the new entry and registers.
    pub fn apply(&self, old: u64, gprs: &Gprs, rflags: u64) -> Done {
        let shift = (self.addr & 7) * 8;
        let m = mask(self.size);
        let cur = (old >> shift) & m;
        let (rex, size) = (self.insn.rex, self.size);
        let mut g = *gprs;
        let mut fl = rflags;
        let new = match self.op {
            Op::Store(v) => Some(v),
            Op::Xchg(r) => {
                let v = read_reg(gprs, r, size, rex);
                write_reg(&mut g, r, size, rex, cur);
                Some(v)
            }
            Op::And(v) => {
                let r = cur & v;
                fl = flags::logic(fl, r, size);
                Some(r)
            }
            Op::Or(v) => {
                let r = cur | v;
                fl = flags::logic(fl, r, size);
                Some(r)
            }
            Op::BitSet(bit, set) => {
                let b = 1u64 << bit;
                fl = flags::carry(fl, cur & b != 0);
                Some(if set { cur | b } else { cur & !b })
            }
            Op::Cmpxchg(r) => {
                let acc = read_reg(gprs, 0, size, rex);
                fl = flags::sub(fl, acc, cur, size);
                if acc == cur {
                    Some(read_reg(gprs, r, size, rex))
                } else {
                    write_reg(&mut g, 0, size, rex, cur);
                    None
                }
            }
        };
        Done { entry: new.map(|v| (old & !(m << shift)) | ((v & m) << shift)), gprs: g, rflags: fl }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode;
    use super::super::flags::{CF, PF, SF, ZF};
    use super::*;

    const L1: u64 = 0xFFFF_FFFF_8010_0000;
    const OLD: u64 = 0x8000_0000_1234_5067;

    /// Plans and applies `bytes` with `gprs`, against entry 2 of the L1 at `L1` (rdi points at
    /// it unless the test moves it), faulting at the entry.
    fn run(bytes: &[u8], gprs: &mut Gprs, rflags: u64) -> Result<(Write, Done), Refused> {
        let insn = decode(bytes).ok_or(Refused::Form)?;
        let w = plan(&insn, gprs, 0x1000, L1 + 16)?;
        let d = w.apply(OLD, gprs, rflags);
        Ok((w, d))
    }

    fn regs(rdi: u64) -> Gprs {
        let mut g = [0; 16];
        g[7] = rdi;
        g
    }

    #[test]
    fn mov_forms() {
        let mut g = regs(L1 + 16);
        g[6] = 0xAAAA_B067;
        // mov [rdi], rsi
        let (w, d) = run(&[0x48, 0x89, 0x37], &mut g, 2).unwrap();
        assert_eq!((w.entry_index(), d.entry, d.rflags), (2, Some(0xAAAA_B067), 2));
        // mov qword [rdi], 0 (imm32)
        let (_, d) = run(&[0x48, 0xC7, 0x07, 0, 0, 0, 0], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0));
        // mov qword [rdi], -1: imm32 sign-extends
        let (_, d) = run(&[0x48, 0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(u64::MAX));
        // mov dword [rdi + 4], esi: the upper half merges
        let (w, d) = run(&[0x89, 0x77, 0x04], &mut g, 2).unwrap();
        assert_eq!((w.size, d.entry), (4, Some(0xAAAA_B067_1234_5067)));
        // mov byte [rdi], sil (REX) and mov byte [rdi], dh (no REX: legacy high byte)
        let (_, d) = run(&[0x40, 0x88, 0x37], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0x8000_0000_1234_5067));
        g[2] = 0x4100;
        let (_, d) = run(&[0x88, 0x37], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0x8000_0000_1234_5041));
        // mov byte [rdi + 1], 0x70; mov word [rdi + 6], 0 (66 C7 imm16)
        let (_, d) = run(&[0xC6, 0x47, 0x01, 0x70], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0x8000_0000_1234_7067));
        let (_, d) = run(&[0x66, 0xC7, 0x47, 0x06, 0, 0], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0x1234_5067));
    }

    #[test]
    fn xchg_returns_the_old_entry() {
        let mut g = regs(L1 + 16);
        g[0] = 0;
        // xchg [rdi], rax (as ptep_get_and_clear writes it)
        let (_, d) = run(&[0x48, 0x87, 0x07], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.gprs[0]), (Some(0), OLD));
        // lock xchg is the same instruction
        let (_, d) = run(&[0xF0, 0x48, 0x87, 0x07], &mut g, 2).unwrap();
        assert_eq!(d.gprs[0], OLD);
        // xchg [rdi], ecx: dword, zero-extends into rcx
        g[1] = 0xFFFF_FFFF_0000_0000;
        let (_, d) = run(&[0x87, 0x0F], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.gprs[1]), (Some(0x8000_0000_0000_0000), 0x1234_5067));
    }

    #[test]
    fn and_or_and_their_flags() {
        let mut g = regs(L1 + 16);
        // lock andb $0xfd, (rdi): clears RW (clear_bit(_PAGE_BIT_RW))
        let (_, d) = run(&[0xF0, 0x80, 0x27, 0xFD], &mut g, 2 | CF).unwrap();
        assert_eq!(d.entry, Some(OLD & !2));
        // 0x65: not zero, not negative (bit 7 clear), 4 bits set -> PF
        assert_eq!(d.rflags, 2 | PF);
        // lock orb $2, (rdi)
        let (_, d) = run(&[0xF0, 0x80, 0x0F, 0x02], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(OLD));
        // and [rdi], rsi with rsi = 0: ZF and PF
        g[6] = 0;
        let (_, d) = run(&[0x48, 0x21, 0x37], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.rflags), (Some(0), 2 | ZF | PF));
        // and qword [rdi], imm8 -1 sign-extended: unchanged, SF from bit 63
        let (_, d) = run(&[0x48, 0x83, 0x27, 0xFF], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(OLD));
        assert_ne!(d.rflags & SF, 0);
        // and dword [rdi+4], imm32 0x7fffffff clears NX
        let (_, d) = run(&[0x81, 0x67, 0x04, 0xFF, 0xFF, 0xFF, 0x7F], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(OLD & !(1 << 63)));
        // or qword [rdi], rsi with rsi = 0x100
        g[6] = 0x100;
        let (_, d) = run(&[0xF0, 0x48, 0x09, 0x37], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(OLD | 0x100));
        // or byte [rdi], sil
        let (_, d) = run(&[0x40, 0x08, 0x37], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(OLD));
    }

    #[test]
    fn bit_test_and_reset_or_set() {
        let mut g = regs(L1 + 16);
        // lock btrq $5, (rdi): ptep_test_and_clear_young
        let (_, d) = run(&[0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05], &mut g, 2 | ZF).unwrap();
        assert_eq!((d.entry, d.rflags), (Some(OLD & !0x20), 2 | ZF | CF));
        // btr $4 of a clear bit: CF clear, entry unchanged
        let (_, d) = run(&[0x48, 0x0F, 0xBA, 0x37, 0x04], &mut g, 2 | CF).unwrap();
        assert_eq!((d.entry, d.rflags), (Some(OLD), 2));
        // bts $63 (imm is taken modulo 64)
        let (_, d) = run(&[0x48, 0x0F, 0xBA, 0x2F, 0x7F], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.rflags & CF), (Some(OLD), CF));
        // lock btr %rsi, (rdi) with rsi = 70: the next entry, bit 6
        g[6] = 70;
        let insn = decode(&[0xF0, 0x48, 0x0F, 0xB3, 0x37]).unwrap();
        let w = plan(&insn, &g, 0, L1 + 24).unwrap();
        assert_eq!((w.addr, w.entry_index()), (L1 + 24, 3));
        assert_eq!(w.apply(OLD, &g, 2).entry, Some(OLD & !0x40));
        // a negative bit offset reaches back: -1 is bit 63 of the previous qword
        g[6] = u64::MAX;
        let w = plan(&insn, &g, 0, L1 + 8).unwrap();
        assert_eq!(w.addr, L1 + 8);
        assert_eq!(w.apply(OLD, &g, 2).entry, Some(OLD & !(1 << 63)));
        // bts %esi, (rdi) dword: offset 33 -> next dword, bit 1
        g[6] = 33;
        let insn = decode(&[0x0F, 0xAB, 0x37]).unwrap();
        let w = plan(&insn, &g, 0, L1 + 20).unwrap();
        assert_eq!((w.addr, w.size), (L1 + 20, 4));
        assert_eq!(w.apply(OLD, &g, 2).entry, Some(OLD | (2 << 32)));
    }

    #[test]
    fn cmpxchg_success_and_failure() {
        let mut g = regs(L1 + 16);
        g[0] = OLD;
        g[1] = 0x5555_5067;
        // lock cmpxchg [rdi], rcx: equal -> write, ZF
        let (_, d) = run(&[0xF0, 0x48, 0x0F, 0xB1, 0x0F], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.gprs[0]), (Some(0x5555_5067), OLD));
        assert_eq!(d.rflags & (ZF | CF), ZF);
        // unequal -> no write, rax = current, ZF clear, flags of rax - current
        g[0] = 1;
        let (_, d) = run(&[0xF0, 0x48, 0x0F, 0xB1, 0x0F], &mut g, 2 | ZF).unwrap();
        assert_eq!((d.entry, d.gprs[0]), (None, OLD));
        assert_eq!(d.rflags & (ZF | CF), CF);
        // dword cmpxchg failing zero-extends eax into rax
        g[0] = 0xFFFF_FFFF_0000_0000;
        let (_, d) = run(&[0x0F, 0xB1, 0x0F], &mut g, 2).unwrap();
        assert_eq!((d.entry, d.gprs[0]), (None, 0x1234_5067));
        // byte cmpxchg succeeding on the low byte
        g[0] = 0x67;
        g[1] = 0x25;
        let (_, d) = run(&[0x0F, 0xB0, 0x0F], &mut g, 2).unwrap();
        assert_eq!(d.entry, Some(0x8000_0000_1234_5025));
    }

    #[test]
    fn refused_forms() {
        let mut g = regs(L1 + 16);
        for bytes in [
            &[0xF0, 0x48, 0x89, 0x37][..],              // lock mov
            &[0xF0, 0xC6, 0x07, 0x00],                  // lock mov imm
            &[0x48, 0xC7, 0x47, 0x00, 0, 0, 0, 0][..1], // truncated
            &[0x48, 0x89, 0xC7],                        // register destination
            &[0x48, 0x0F, 0xBA, 0x27, 0x05],            // bt (reads only)
            &[0x48, 0x0F, 0xBA, 0x3F, 0x05],            // btc
            &[0x66, 0x0F, 0xBA, 0x37, 0x05],            // 16-bit btr
            &[0x48, 0xC7, 0x0F, 0, 0, 0, 0],            // C7 /1
            &[0x48, 0x83, 0x07, 0x01],                  // add
            &[0x48, 0x0F, 0x20, 0xE0],                  // a privileged instruction
            &[0x65, 0x48, 0x89, 0x37],                  // gs:
        ] {
            assert_eq!(run(bytes, &mut g, 2).map(|_| ()), Err(Refused::Form), "{bytes:x?}");
        }
    }

    #[test]
    fn refused_addresses() {
        // misaligned qword; a dword crossing into the next entry; a write to another page
        let mut g = regs(L1 + 12);
        assert_eq!(run(&[0x48, 0x89, 0x37], &mut g, 2).map(|_| ()), Err(Refused::Address));
        g[7] = L1 + 18;
        assert_eq!(run(&[0x89, 0x37], &mut g, 2).map(|_| ()), Err(Refused::Address));
        g[7] = L1 + 0x1000;
        assert_eq!(run(&[0x48, 0x89, 0x37], &mut g, 2).map(|_| ()), Err(Refused::Address));
        // a register bit offset that leaves the faulting page
        g[7] = L1 + 0xFF8;
        g[6] = 64;
        let insn = decode(&[0x48, 0x0F, 0xB3, 0x37]).unwrap();
        assert_eq!(plan(&insn, &g, 0, L1 + 0xFF8), Err(Refused::Address));
    }
}
