//! The hypercall page: 128 stubs of 32 bytes the hypervisor writes into a page the guest
//! names with the `HYPERCALL_PAGE` ELF note (see [`crate::elfnote`]).
//!
//! Stub `n` is `push rcx; push r11; mov eax, n; syscall; pop r11; pop rcx; ret`. Saving rcx and
//! r11 around `syscall` (which clobbers them) lets the guest treat the stub as an ordinary call
//! that preserves everything but `rax` and the argument registers. Stub 23 (`iret`) is different:
//! it pushes rax as well and never returns, because the hypervisor consumes the
//! [`crate::arch::IretContext`] the guest built on its stack. Unused bytes are `int3` (0xcc) so a
//! stray jump into the page traps instead of sliding into the next stub.
//!
//! A preempted hypercall is restarted by moving the guest rip back by [`SYSCALL_INSN_LEN`]
//! bytes, onto the `syscall` instruction inside the stub, with rax still holding the number.

use crate::nr;

/// Size of one stub, in bytes.
pub const STUB_SIZE: usize = nr::STUB_SIZE as usize;
/// Number of stubs in the page.
pub const NR_STUBS: usize = nr::HYPERCALL_PAGE_STUBS as usize;
/// Length of the `syscall` instruction (0f 05): how far rip moves back to restart a hypercall.
pub const SYSCALL_INSN_LEN: u64 = 2;
/// Filler for the unused bytes of each stub: `int3`.
pub const FILL: u8 = 0xcc;

/// Offset of the `syscall` instruction inside an ordinary stub.
pub const SYSCALL_OFFSET: usize = 8;
/// Offset of the `syscall` instruction inside the iret stub.
pub const IRET_SYSCALL_OFFSET: usize = 9;

/// The bytes of stub `nr` (the iret stub for [`nr::IRET`]).
#[must_use]
pub fn stub_bytes(nr: u32) -> [u8; STUB_SIZE] {
    let mut s = [FILL; STUB_SIZE];
    let imm = nr.to_le_bytes();
    if u64::from(nr) == nr::IRET {
        // push rcx; push r11; push rax; mov eax, 23; syscall
        s[..5].copy_from_slice(&[0x51, 0x41, 0x53, 0x50, 0xb8]);
        s[5..9].copy_from_slice(&imm);
        s[9..11].copy_from_slice(&[0x0f, 0x05]);
    } else {
        // push rcx; push r11; mov eax, nr; syscall; pop r11; pop rcx; ret
        s[..4].copy_from_slice(&[0x51, 0x41, 0x53, 0xb8]);
        s[4..8].copy_from_slice(&imm);
        s[8..14].copy_from_slice(&[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
    }
    s
}

/// Fill a whole hypercall page (the hypervisor calls this on the page the guest's ELF note
/// names, before the guest runs).
pub fn fill_page(page: &mut [u8; crate::types::PAGE_SIZE as usize]) {
    for (i, chunk) in page.chunks_exact_mut(STUB_SIZE).enumerate() {
        chunk.copy_from_slice(&stub_bytes(i as u32));
    }
}

/// Offset of the `syscall` instruction inside stub `nr`, relative to the start of the page:
/// the hypervisor can check that a hypercall's return rip is `this + 2` when deciding whether
/// it came through the page.
#[must_use]
pub fn syscall_offset_in_page(nr: u32) -> usize {
    let base = nr as usize * STUB_SIZE;
    if u64::from(nr) == nr::IRET { base + IRET_SYSCALL_OFFSET } else { base + SYSCALL_OFFSET }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_stub_exact_bytes() {
        let s = stub_bytes(29);
        let want: [u8; 14] =
            [0x51, 0x41, 0x53, 0xb8, 29, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3];
        assert_eq!(&s[..14], &want);
        assert!(s[14..].iter().all(|&b| b == 0xcc));
        assert_eq!(&s[SYSCALL_OFFSET..SYSCALL_OFFSET + 2], &[0x0f, 0x05]);
    }

    #[test]
    fn stub_number_is_le32() {
        let s = stub_bytes(0x0102_0304);
        assert_eq!(&s[4..8], &[0x04, 0x03, 0x02, 0x01]);
    }

    #[test]
    fn iret_stub_exact_bytes() {
        let s = stub_bytes(23);
        let want: [u8; 11] = [0x51, 0x41, 0x53, 0x50, 0xb8, 0x17, 0, 0, 0, 0x0f, 0x05];
        assert_eq!(&s[..11], &want);
        assert!(s[11..].iter().all(|&b| b == 0xcc));
        assert_eq!(&s[IRET_SYSCALL_OFFSET..IRET_SYSCALL_OFFSET + 2], &[0x0f, 0x05]);
    }

    #[test]
    fn whole_page() {
        let mut page = [0u8; 4096];
        fill_page(&mut page);
        for n in 0..NR_STUBS {
            assert_eq!(page[n * 32..(n + 1) * 32], stub_bytes(n as u32));
        }
        assert_eq!(&page[0..8], &[0x51, 0x41, 0x53, 0xb8, 0, 0, 0, 0]);
        assert_eq!(page[127 * 32 + 4], 127);
        assert_eq!(syscall_offset_in_page(1), 40);
        assert_eq!(syscall_offset_in_page(23), 23 * 32 + 9);
    }
}
