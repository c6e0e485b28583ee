//! Page-table updates for direct-paging PV guests: `mmu_update` (1), `update_va_mapping` (14)
//! and `mmuext_op` (26), plus the x86 PTE bits they carry.
//!
//! A PV guest's page tables hold *machine* frame numbers and are mapped read-only into the
//! guest; every change goes through these hypercalls, which validate that the guest owns (or was
//! granted) what it maps and that no page-table frame becomes writable.

use crate::types::{Mfn, PAddr, VAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// ---- mmu_update ----

/// `ptr[1:0]`: checked write of `val` to the PTE at machine address `ptr`.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr[1:0]`: set the M2P entry of the frame containing `ptr` to PFN `val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `ptr[1:0]`: as normal, but keep the Accessed/Dirty bits already in the PTE.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `ptr[1:0]`: as normal, but `val` is never translated (auto-translated guests).
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;
/// Mask of the command bits in `MmuUpdate::ptr`.
pub const MMU_CMD_MASK: u64 = 3;

/// One `mmu_update` request (16 bytes). Written by the guest.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MmuUpdate {
    /// IN: machine address of the PTE (8-byte aligned), command in bits 1:0.
    pub ptr: u64,
    /// IN: new PTE value, or the PFN for `MMU_MACHPHYS_UPDATE`.
    pub val: u64,
}

impl MmuUpdate {
    /// Write `pte` into the page-table entry at machine address `pte_maddr`.
    #[must_use]
    pub const fn normal(pte_maddr: PAddr, pte: u64) -> Self {
        Self { ptr: (pte_maddr.0 & !MMU_CMD_MASK) | MMU_NORMAL_PT_UPDATE, val: pte }
    }

    /// Record that machine frame `mfn` holds pseudo-physical frame `pfn` (M2P update).
    #[must_use]
    pub const fn machphys(mfn: Mfn, pfn: u64) -> Self {
        Self { ptr: mfn.addr().0 | MMU_MACHPHYS_UPDATE, val: pfn }
    }

    /// The `MMU_*` command in `ptr`.
    #[must_use]
    pub const fn cmd(&self) -> u64 {
        self.ptr & MMU_CMD_MASK
    }

    /// The machine address in `ptr`, without the command bits.
    #[must_use]
    pub const fn addr(&self) -> PAddr {
        PAddr(self.ptr & !MMU_CMD_MASK)
    }
}

// ---- update_va_mapping flags ----

/// No TLB flush.
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Flush only the updated address.
pub const UVMF_INVLPG: u64 = 2;
/// Mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// Flush the vCPUs in a bitmap whose pointer is ORed into the flags.
pub const UVMF_MULTI: u64 = 0;
/// Flush the local vCPU only (UVMF_MULTI with a NULL bitmap).
pub const UVMF_LOCAL: u64 = 0;
/// Flush all vCPUs of the domain.
pub const UVMF_ALL: u64 = 4;

/// `update_va_mapping` flags, typed: a flush type ([`Uvmf::NONE`], [`Uvmf::TLB_FLUSH`],
/// [`Uvmf::INVLPG`]) combined with `|` with a scope ([`Uvmf::LOCAL`], [`Uvmf::ALL`], or
/// [`Uvmf::multi`] with a vCPU bitmap). The `UVMF_*` constants are the same values as raw
/// `u64`s, which is how the flags travel (in a register, with the bitmap's address ORed in)
/// and how a hypervisor decodes them.
#[repr(transparent)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Uvmf(pub u64);

impl Uvmf {
    /// [`UVMF_NONE`]: no TLB flush.
    pub const NONE: Uvmf = Uvmf(UVMF_NONE);
    /// [`UVMF_TLB_FLUSH`]: flush the whole TLB.
    pub const TLB_FLUSH: Uvmf = Uvmf(UVMF_TLB_FLUSH);
    /// [`UVMF_INVLPG`]: flush only the updated address.
    pub const INVLPG: Uvmf = Uvmf(UVMF_INVLPG);
    /// [`UVMF_LOCAL`]: on this vCPU only (the default scope).
    pub const LOCAL: Uvmf = Uvmf(UVMF_LOCAL);
    /// [`UVMF_ALL`]: on every vCPU of the domain.
    pub const ALL: Uvmf = Uvmf(UVMF_ALL);

    /// Scope: the vCPUs in the bitmap at guest address `bitmap` (8-byte aligned, so the flag
    /// bits below stay free). `None` for a misaligned address.
    #[must_use]
    pub const fn multi(bitmap: VAddr) -> Option<Uvmf> {
        if bitmap.0 & 7 != 0 || bitmap.0 == 0 {
            return None;
        }
        Some(Uvmf(bitmap.0 | UVMF_MULTI))
    }

    /// The flush type (`UVMF_FLUSHTYPE_MASK` bits).
    #[must_use]
    pub const fn flush_type(self) -> u64 {
        self.0 & UVMF_FLUSHTYPE_MASK
    }
}

impl core::ops::BitOr for Uvmf {
    type Output = Uvmf;
    fn bitor(self, rhs: Uvmf) -> Uvmf {
        Uvmf(self.0 | rhs.0)
    }
}

// ---- mmuext_op ----

/// Pin `arg1` (MFN) as an L1 table: validate it and keep it typed while pinned.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// Pin `arg1` (MFN) as an L2 table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// Pin `arg1` (MFN) as an L3 table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// Pin `arg1` (MFN) as an L4 table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// Unpin the table at `arg1` (MFN).
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Load `arg1` (MFN of an L4) as the kernel-mode page table base (CR3).
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// Flush the local TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Invalidate linear address `arg1` in the local TLB.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// Flush the TLBs of the vCPUs in the bitmap at guest address `arg2`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// Invalidate `arg1` on the vCPUs in the bitmap at `arg2`.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// Flush the TLBs of all the domain's vCPUs.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// Invalidate `arg1` on all the domain's vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// Write back and invalidate caches (privileged).
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// Install an LDT at linear address `arg1` (page aligned) with `arg2` entries.
pub const MMUEXT_SET_LDT: u32 = 13;
/// Load `arg1` (MFN of an L4) as the user-mode page table base.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// Zero the frame `arg1` (MFN).
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// Copy frame `arg2` (source MFN) to frame `arg1` (destination MFN).
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// Write back and invalidate caches on all CPUs (privileged).
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// Mark the 2 MiB-aligned range at `arg1` (MFN) as a superpage.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// Undo [`MMUEXT_MARK_SUPER`].
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// One `mmuext_op` request (24 bytes). Written by the guest.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MmuextOp {
    /// IN: `MMUEXT_*`.
    pub cmd: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: MFN (pin, baseptr, clear/copy page) or linear address (invlpg, set_ldt).
    pub arg1: u64,
    /// IN: LDT entry count (set_ldt), vCPU bitmap guest address (`*_MULTI`) or source MFN
    /// (copy_page).
    pub arg2: u64,
}

impl MmuextOp {
    /// An op with both arguments.
    #[must_use]
    pub const fn new(cmd: u32, arg1: u64, arg2: u64) -> Self {
        Self { cmd, _pad: 0, arg1, arg2 }
    }

    /// Pin `mfn` as a page table of `level` (1..=4). `None` for another level.
    #[must_use]
    pub const fn pin(level: u32, mfn: Mfn) -> Option<Self> {
        match level {
            1..=4 => Some(Self::new(MMUEXT_PIN_L1_TABLE + level - 1, mfn.0, 0)),
            _ => None,
        }
    }

    /// Unpin the table at `mfn`.
    #[must_use]
    pub const fn unpin(mfn: Mfn) -> Self {
        Self::new(MMUEXT_UNPIN_TABLE, mfn.0, 0)
    }

    /// Switch the kernel page-table base to the L4 at `mfn`.
    #[must_use]
    pub const fn new_baseptr(mfn: Mfn) -> Self {
        Self::new(MMUEXT_NEW_BASEPTR, mfn.0, 0)
    }

    /// Switch the user page-table base to the L4 at `mfn`.
    #[must_use]
    pub const fn new_user_baseptr(mfn: Mfn) -> Self {
        Self::new(MMUEXT_NEW_USER_BASEPTR, mfn.0, 0)
    }

    /// Invalidate `va` in the local TLB.
    #[must_use]
    pub const fn invlpg_local(va: u64) -> Self {
        Self::new(MMUEXT_INVLPG_LOCAL, va, 0)
    }

    /// Flush the local TLB.
    #[must_use]
    pub const fn tlb_flush_local() -> Self {
        Self::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)
    }
}

crate::assert_layout!(MmuUpdate, size = 16, ptr = 0, val = 8);
crate::assert_layout!(MmuextOp, size = 24, cmd = 0, arg1 = 8, arg2 = 16);

// ---- x86 page-table entry bits ----

/// Present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Writable.
pub const PTE_RW: u64 = 1 << 1;
/// User accessible (PV guests need it set on every level: the kernel runs in ring 3).
pub const PTE_USER: u64 = 1 << 2;
/// Write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// Cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// Accessed.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// Dirty (leaf entries).
pub const PTE_DIRTY: u64 = 1 << 6;
/// Large page (L2/L3 entries).
pub const PTE_PSE: u64 = 1 << 7;
/// PAT index bit (L1 entries; bit 7 there).
pub const PTE_PAT: u64 = 1 << 7;
/// Global (leaf entries).
pub const PTE_GLOBAL: u64 = 1 << 8;
/// No-execute.
pub const PTE_NX: u64 = 1 << 63;
/// Physical-address bits of a 4 KiB PTE (bits 51:12).
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Flags the domain builder puts on bootstrap L1 entries: present, RW, accessed.
pub const BOOT_L1_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED;
/// Flags the domain builder puts on bootstrap L2-L4 entries: present, RW, user, accessed,
/// dirty.
pub const BOOT_LN_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;

/// Build a PTE for machine frame `mfn` with `flags`.
#[must_use]
pub const fn pte(mfn: Mfn, flags: u64) -> u64 {
    (mfn.addr().0 & PTE_ADDR_MASK) | (flags & !PTE_ADDR_MASK)
}

/// The machine frame a PTE points at.
#[must_use]
pub const fn pte_mfn(pte: u64) -> Mfn {
    PAddr(pte & PTE_ADDR_MASK).frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmu_update_encoding() {
        let u = MmuUpdate::normal(PAddr(0x1234_5678), 7);
        assert_eq!(u.cmd(), MMU_NORMAL_PT_UPDATE);
        assert_eq!(u.addr(), PAddr(0x1234_5678));
        let m = MmuUpdate::machphys(Mfn(0x42), 9);
        assert_eq!(m.cmd(), MMU_MACHPHYS_UPDATE);
        assert_eq!(m.addr().frame(), Mfn(0x42));
        assert_eq!(m.val, 9);
    }

    #[test]
    fn pte_helpers() {
        assert_eq!(BOOT_L1_FLAGS, 0x23);
        assert_eq!(BOOT_LN_FLAGS, 0x67);
        let p = pte(Mfn(0xABCDE), PTE_PRESENT | PTE_RW | PTE_NX);
        assert_eq!(pte_mfn(p), Mfn(0xABCDE));
        assert_eq!(p & 0xFFF, 3);
        assert_ne!(p & PTE_NX, 0);
    }

    #[test]
    fn uvmf_flags() {
        assert_eq!((Uvmf::INVLPG | Uvmf::ALL).0, 6);
        assert_eq!((Uvmf::INVLPG | Uvmf::ALL).flush_type(), UVMF_INVLPG);
        assert_eq!(Uvmf::multi(VAddr(0x1000)).map(|u| u | Uvmf::TLB_FLUSH), Some(Uvmf(0x1001)));
        assert_eq!(Uvmf::multi(VAddr(0x1004)), None);
        assert_eq!(Uvmf::default(), Uvmf::NONE);
    }

    #[test]
    fn mmuext_builders() {
        assert_eq!(MmuextOp::pin(4, Mfn(5)).map(|o| o.cmd), Some(MMUEXT_PIN_L4_TABLE));
        assert_eq!(MmuextOp::pin(1, Mfn(5)).map(|o| o.cmd), Some(MMUEXT_PIN_L1_TABLE));
        assert_eq!(MmuextOp::pin(5, Mfn(5)), None);
        assert_eq!(MmuextOp::new_baseptr(Mfn(9)).arg1, 9);
    }
}
