//! `start_info`: the page the domain builder hands a PV kernel at entry (its virtual address is
//! in `rsi`). Written by the hypervisor (dom0) or the toolstack (domU) before the first
//! instruction runs; the guest only reads it.
//!
//! The first block is filled again on resume after suspend; the fields from `pt_base` on are only
//! meaningful at initial boot. All "unsigned long" fields of Xen's header are `u64` here.

use crate::types::{EvtchnPort, Mfn, PAddr, VAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The magic string at the start of `start_info` for a 64-bit PV guest (NUL padded to 32).
pub const MAGIC: &[u8] = b"xen-3.0-x86_64";
/// Size of the `cmd_line` field, including its NUL terminator.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// The domain is privileged (may use dom0-only operations).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// The domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `mod_start` / `mod_len` describe a list of multiboot modules rather than one ramdisk.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `mod_start` is a PFN (the module is not mapped by the bootstrap page tables), not a VA.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// The toolstack understands a virtually mapped P2M list.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// Byte reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The `console` union of `start_info`, kept as raw words; read it through the view that
/// matches the domain ([`StartInfoConsole::domu`] or [`StartInfoConsole::dom0`]).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct StartInfoConsole {
    raw: [u64; 2],
}

/// The domU view of the console union: where the console ring page is.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ConsoleDomU {
    /// OUT (builder): machine frame of the `xencons_interface` page.
    pub mfn: Mfn,
    /// OUT (builder): event channel for console notifications.
    pub evtchn: EvtchnPort,
    /// Padding to the union's size.
    pub _pad: u32,
}

/// The dom0 view of the console union: where in `start_info` a `dom0_vga_console_info` is.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ConsoleDom0 {
    /// OUT (hypervisor): offset of the VGA console info from the start of `start_info`.
    pub info_off: u32,
    /// OUT (hypervisor): its size (0 = none).
    pub info_size: u32,
}

impl StartInfoConsole {
    /// Read as the domU view.
    #[must_use]
    pub fn domu(&self) -> ConsoleDomU {
        zerocopy::transmute!(self.raw)
    }

    /// Read as the dom0 view (the first 8 bytes).
    #[must_use]
    pub fn dom0(&self) -> ConsoleDom0 {
        zerocopy::transmute!(self.raw[0])
    }

    /// Build from the domU view.
    #[must_use]
    pub fn from_domu(v: ConsoleDomU) -> Self {
        Self { raw: zerocopy::transmute!(v) }
    }

    /// Build from the dom0 view (the rest of the union is zero).
    #[must_use]
    pub fn from_dom0(v: ConsoleDom0) -> Self {
        Self { raw: [zerocopy::transmute!(v), 0] }
    }
}

/// `start_info` (1168 bytes). Every field is written by the domain builder; the guest reads.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct StartInfo {
    /// `"xen-3.0-x86_64"`, NUL padded. A guest should check it before trusting the rest.
    pub magic: [u8; 32],
    /// Total pages allocated to the domain (the length of the P2M list).
    pub nr_pages: u64,
    /// *Machine* address of the `shared_info` page (the guest maps it itself).
    pub shared_info: PAddr,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Padding.
    pub _pad0: u32,
    /// Machine frame of the XenStore ring page.
    pub store_mfn: Mfn,
    /// Event channel for XenStore notifications.
    pub store_evtchn: EvtchnPort,
    /// Padding.
    pub _pad1: u32,
    /// Console ring (domU) or VGA console info (dom0).
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap L4 page table (boot only).
    pub pt_base: VAddr,
    /// Number of bootstrap page-table frames, mapped read-only after `pt_base` (boot only).
    pub nr_pt_frames: u64,
    /// Virtual address of the P2M list: `nr_pages` MFNs, one `u64` per PFN (boot only).
    pub mfn_list: VAddr,
    /// Virtual address of the first module (the ramdisk), or its PFN with `SIF_MOD_START_PFN`.
    pub mod_start: u64,
    /// Size of the module in bytes (0 = none).
    pub mod_len: u64,
    /// Kernel command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table frames when placed by the `INIT_P2M` note.
    pub first_p2m_pfn: u64,
    /// Number of those frames.
    pub nr_p2m_frames: u64,
}

crate::assert_layout!(StartInfoConsole, size = 16);
crate::assert_layout!(ConsoleDomU, size = 16, mfn = 0, evtchn = 8);
crate::assert_layout!(ConsoleDom0, size = 8, info_off = 0, info_size = 4);
crate::assert_layout!(
    StartInfo,
    size = 1168,
    magic = 0,
    nr_pages = 32,
    shared_info = 40,
    flags = 48,
    store_mfn = 56,
    store_evtchn = 64,
    console = 72,
    pt_base = 88,
    nr_pt_frames = 96,
    mfn_list = 104,
    mod_start = 112,
    mod_len = 120,
    cmd_line = 128,
    first_p2m_pfn = 1152,
    nr_p2m_frames = 1160
);

impl StartInfo {
    /// The magic field as the builder writes it.
    #[must_use]
    pub fn magic_bytes() -> [u8; 32] {
        let mut m = [0u8; 32];
        m[..MAGIC.len()].copy_from_slice(MAGIC);
        m
    }

    /// True if `magic` starts with `"xen-3.0-x86_64"`.
    #[must_use]
    pub fn has_valid_magic(&self) -> bool {
        self.magic.starts_with(MAGIC)
    }

    /// The command line up to (not including) its NUL; all of it if there is none.
    #[must_use]
    pub fn cmdline(&self) -> &[u8] {
        let end = self.cmd_line.iter().position(|&b| b == 0).unwrap_or(self.cmd_line.len());
        &self.cmd_line[..end]
    }

    /// Store a command line, truncated to 1023 bytes so it stays NUL terminated. Returns
    /// false if it had to truncate.
    pub fn set_cmdline(&mut self, s: &[u8]) -> bool {
        let n = s.len().min(MAX_GUEST_CMDLINE - 1);
        self.cmd_line = [0; MAX_GUEST_CMDLINE];
        self.cmd_line[..n].copy_from_slice(&s[..n]);
        n == s.len()
    }

    /// True if `SIF_INITDOMAIN` is set.
    #[must_use]
    pub const fn is_initdomain(&self) -> bool {
        self.flags & SIF_INITDOMAIN != 0
    }

    /// True if `SIF_PRIVILEGED` is set.
    #[must_use]
    pub const fn is_privileged(&self) -> bool {
        self.flags & SIF_PRIVILEGED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn console_views() {
        let c = StartInfoConsole::from_domu(ConsoleDomU {
            mfn: Mfn(0x1234),
            evtchn: EvtchnPort(3),
            _pad: 0,
        });
        assert_eq!(c.domu().mfn, Mfn(0x1234));
        assert_eq!(c.domu().evtchn, EvtchnPort(3));
        let d = StartInfoConsole::from_dom0(ConsoleDom0 { info_off: 0x500, info_size: 40 });
        assert_eq!(d.dom0(), ConsoleDom0 { info_off: 0x500, info_size: 40 });
        assert_eq!(&d.as_bytes()[..8], &[0, 5, 0, 0, 40, 0, 0, 0]);
    }

    #[test]
    fn magic_and_cmdline() {
        let mut si = StartInfo::new_zeroed();
        assert!(!si.has_valid_magic());
        si.magic = StartInfo::magic_bytes();
        assert!(si.has_valid_magic());
        assert!(si.set_cmdline(b"console=hvc0"));
        assert_eq!(si.cmdline(), b"console=hvc0");
        assert!(!si.set_cmdline(&[b'a'; 2000]));
        assert_eq!(si.cmdline().len(), 1023);
        assert_eq!(si.as_bytes().len(), 1168);
    }
}
