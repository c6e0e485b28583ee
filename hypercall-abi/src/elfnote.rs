//! ELF notes a PV kernel carries to tell the domain builder how to load it (owner name `"Xen"`).
//!
//! The builder looks in `PT_NOTE` segments and in `SHT_NOTE` sections (some kernels only have
//! the section). Numeric notes are 4 or 8 bytes little-endian; string notes are NUL terminated.
//! A minimal 64-bit PV kernel carries at least `ENTRY`, `HYPERCALL_PAGE`, `VIRT_BASE`,
//! `PADDR_OFFSET`, `XEN_VERSION` (`"xen-3.0"`), `GUEST_OS`, `LOADER` (`"generic"`) and
//! `FEATURES`. The kernel is placed at `p_paddr + (VIRT_BASE - PADDR_OFFSET)`.
//!
//! [`xen_elf_notes!`](crate::xen_elf_notes) writes them into a kernel; [`NoteIter`] walks the
//! raw bytes of a note segment/section and trusts nothing in them; [`parse_features`] reads a
//! `FEATURES` string.

use crate::version;

/// Owner name of Xen's notes (the note's name field is `"Xen\0"`).
pub const NAME: &[u8] = b"Xen";

/// `NAME=VALUE` pair (string). Informational.
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Virtual address of the entry point (numeric).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address of the page the hypervisor fills with hypercall stubs (numeric).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual address the image is mapped at; the 1:1 mapping of pfn 0 (numeric, default 0).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Offset between the ELF `p_paddr` and the real pseudo-physical address (numeric).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Xen interface version the kernel works with (string, `"xen-3.0"`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Guest OS name (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Guest OS version (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (string, `"generic"`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE support (x86_32 only; string).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Features, `|`-separated `XENFEAT_*` names without prefix; `!` marks required (string).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// The kernel wants its symbol table loaded (string `"yes"`/`"no"`).
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest address the hypervisor hole may start at (numeric).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Mask/value pairs recognising non-present L1 entries that carry MFNs (numeric).
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// The guest supports cooperative suspend cancellation (numeric).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address at which to place the initial P2M list, instead of after the ramdisk.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The kernel accepts a ramdisk not mapped by the bootstrap tables (`SIF_MOD_START_PFN`).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Bitmap of supported `XENFEAT_*` (numeric, 32 bits), ORed with the `FEATURES` string.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// 32-bit physical entry point for PVH (numeric).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// PVH relocation constraints.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;
/// Highest note type defined.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_RELOC;
/// Crash-dump note: system information.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x0100_0001;
/// Crash-dump note: registers.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x0100_0002;

/// Value of the `XEN_VERSION` note for the 3.0+ interface.
pub const XEN_VERSION_STRING: &[u8] = b"xen-3.0";
/// Value of the `LOADER` note.
pub const LOADER_GENERIC: &[u8] = b"generic";

/// Emits a kernel's Xen ELF notes into a `.note.Xen` section (put it in a `PT_NOTE` segment with
/// the linker script), so no kernel writes them by hand:
///
/// ```ignore
/// hypercall_abi::xen_elf_notes! {
///     entry: "_start",                     // symbol of the entry point
///     hypercall_page: "hypercall_page",    // symbol of the hypercall page
///     virt_base: 0xFFFF_FFFF_8000_0000,    // where the image is linked (= PADDR_OFFSET)
///     guest_os: "minimal-kernel",
///     guest_version: "0.1",
///     features: "writable_descriptor_tables",   // FEATURES string; `!` = required
///     supported_features: 1 << 11,          // SUPPORTED_FEATURES bitmap (XENFEAT_dom0)
/// }
/// ```
///
/// It writes `XEN_VERSION` (`"xen-3.0"`), `LOADER` (`"generic"`), `GUEST_OS`,
/// `GUEST_VERSION`, `VIRT_BASE` and `PADDR_OFFSET` (both `virt_base`: link the image with
/// physical = virtual addresses), `ENTRY`, `HYPERCALL_PAGE`, `FEATURES` and
/// `SUPPORTED_FEATURES`. `virt_base` must be page aligned (checked at compile time). A kernel
/// that may run as dom0 on Xen must set `XENFEAT_dom0` (bit 11) in `supported_features`: Xen
/// refuses a dom0 kernel without it.
///
/// On `features`: xen-core refuses to build a kernel that *requires* (`!`) a feature it does
/// not implement, which today is every feature but `writable_descriptor_tables` and
/// `pae_pgdir_above_4gb`; in particular `!writable_page_tables` (Linux's, for the
/// writable-page-table assist) is refused. Without the `!`, a feature is only a claim of
/// support and never refused.
#[macro_export]
macro_rules! xen_elf_notes {
    (
        entry: $entry:literal,
        hypercall_page: $hp:literal,
        virt_base: $vb:expr,
        guest_os: $os:literal,
        guest_version: $gv:literal,
        features: $feat:literal,
        supported_features: $sf:expr $(,)?
    ) => {
        const _: () = assert!(($vb) % 4096 == 0, "virt_base must be page aligned");
        ::core::arch::global_asm!(
            ".pushsection .note.Xen, \"a\"",
            ".balign 4",
            // Each note: namesz (4: "Xen\0"), descsz (from the labels), type, name, desc; name
            // and desc each padded to 4 bytes.
            ".long 4, 2f - 1f, 5",
            ".asciz \"Xen\"",
            "1: .asciz \"xen-3.0\"",
            "2: .balign 4",
            ".long 4, 2f - 1f, 8",
            ".asciz \"Xen\"",
            "1: .asciz \"generic\"",
            "2: .balign 4",
            ".long 4, 2f - 1f, 6",
            ".asciz \"Xen\"",
            concat!("1: .asciz \"", $os, "\""),
            "2: .balign 4",
            ".long 4, 2f - 1f, 7",
            ".asciz \"Xen\"",
            concat!("1: .asciz \"", $gv, "\""),
            "2: .balign 4",
            ".long 4, 2f - 1f, 3",
            ".asciz \"Xen\"",
            "1: .quad {virt_base}",
            "2: .balign 4",
            ".long 4, 2f - 1f, 4",
            ".asciz \"Xen\"",
            "1: .quad {virt_base}",
            "2: .balign 4",
            ".long 4, 2f - 1f, 1",
            ".asciz \"Xen\"",
            concat!("1: .quad ", $entry),
            "2: .balign 4",
            ".long 4, 2f - 1f, 2",
            ".asciz \"Xen\"",
            concat!("1: .quad ", $hp),
            "2: .balign 4",
            ".long 4, 2f - 1f, 10",
            ".asciz \"Xen\"",
            concat!("1: .asciz \"", $feat, "\""),
            "2: .balign 4",
            ".long 4, 2f - 1f, 17",
            ".asciz \"Xen\"",
            "1: .long {supported}",
            "2: .balign 4",
            ".popsection",
            virt_base = const $vb,
            supported = const $sf,
        );
    };
}

/// One note: owner name (without the NUL), type and descriptor bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Owner name, trailing NULs stripped.
    pub name: &'a [u8],
    /// Note type (`XEN_ELFNOTE_*` when the name is [`NAME`]).
    pub kind: u32,
    /// Descriptor bytes.
    pub desc: &'a [u8],
}

impl<'a> Note<'a> {
    /// True if this is one of Xen's notes.
    #[must_use]
    pub fn is_xen(&self) -> bool {
        self.name == NAME
    }

    /// The descriptor as a little-endian number (4 or 8 bytes), as numeric notes are.
    #[must_use]
    pub fn numeric(&self) -> Option<u64> {
        match self.desc.len() {
            4 => Some(u64::from(u32::from_le_bytes(self.desc.try_into().ok()?))),
            8 => Some(u64::from_le_bytes(self.desc.try_into().ok()?)),
            _ => None,
        }
    }

    /// The descriptor as a string, up to its first NUL.
    #[must_use]
    pub fn string(&self) -> &'a [u8] {
        let end = self.desc.iter().position(|&b| b == 0).unwrap_or(self.desc.len());
        &self.desc[..end]
    }
}

/// Iterator over the notes in a `PT_NOTE` segment or `SHT_NOTE` section (ELF64 layout:
/// `namesz u32, descsz u32, type u32`, name and desc each padded to 4 bytes). Stops at the
/// first malformed or truncated entry.
#[derive(Clone, Debug)]
pub struct NoteIter<'a> {
    rest: &'a [u8],
}

impl<'a> NoteIter<'a> {
    /// Iterate over `bytes`.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

const fn align4(n: usize) -> Option<usize> {
    match n.checked_add(3) {
        Some(v) => Some(v & !3),
        None => None,
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        let b = self.rest;
        let parsed = (|| {
            let namesz = le32(b, 0)? as usize;
            let descsz = le32(b, 4)? as usize;
            let kind = le32(b, 8)?;
            let name_end = 12usize.checked_add(namesz)?;
            let desc_start = align4(name_end)?;
            let desc_end = desc_start.checked_add(descsz)?;
            let name = b.get(12..name_end)?;
            let desc = b.get(desc_start..desc_end)?;
            let next = align4(desc_end)?.min(b.len());
            let mut n = name.len();
            while n > 0 && name[n - 1] == 0 {
                n -= 1;
            }
            Some((Note { name: &name[..n], kind, desc }, next))
        })();
        match parsed {
            Some((note, next)) => {
                self.rest = &b[next..];
                Some(note)
            }
            None => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Parse a `FEATURES` note string into `(supported, required)` `XENFEAT_*` bitmaps for submap
/// 0. Unknown names are ignored (a kernel may know newer features); `Err(name)` is returned
/// for an unknown *required* feature, which the builder must refuse.
pub fn parse_features(s: &[u8]) -> Result<(u32, u32), &[u8]> {
    let (mut supported, mut required) = (0u32, 0u32);
    for item in s.split(|&c| c == b'|').filter(|i| !i.is_empty()) {
        let (is_required, name) = match item.split_first() {
            Some((b'!', rest)) => (true, rest),
            _ => (false, item),
        };
        match version::feature_by_name(name) {
            Some(bit) if bit < 32 => {
                supported |= 1 << bit;
                if is_required {
                    required |= 1 << bit;
                }
            }
            _ if is_required => return Err(name),
            _ => {}
        }
    }
    Ok((supported, required))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn iterates_notes() {
        let mut bytes = note(NAME, XEN_ELFNOTE_ENTRY, &0xFFFF_FFFF_8000_1000u64.to_le_bytes());
        bytes.extend(note(b"GNU", 3, &[1, 2, 3]));
        bytes.extend(note(NAME, XEN_ELFNOTE_LOADER, b"generic\0"));
        bytes.extend(note(NAME, XEN_ELFNOTE_HYPERCALL_PAGE, &0x1000u32.to_le_bytes()));
        let notes: Vec<_> = NoteIter::new(&bytes).collect();
        assert_eq!(notes.len(), 4);
        assert!(notes[0].is_xen());
        assert_eq!(notes[0].numeric(), Some(0xFFFF_FFFF_8000_1000));
        assert!(!notes[1].is_xen());
        assert_eq!(notes[1].desc, &[1, 2, 3]);
        assert_eq!(notes[2].string(), LOADER_GENERIC);
        assert_eq!(notes[3].numeric(), Some(0x1000));
    }

    #[test]
    fn truncated_input_stops() {
        let bytes = note(NAME, XEN_ELFNOTE_ENTRY, &[0; 8]);
        assert_eq!(NoteIter::new(&bytes[..bytes.len() - 1]).count(), 0);
        let mut huge = bytes.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(NoteIter::new(&huge).count(), 0);
        assert_eq!(NoteIter::new(&[]).count(), 0);
    }

    #[test]
    fn features_string() {
        let (s, r) = parse_features(b"!writable_page_tables|pae_pgdir_above_4gb|foo").unwrap();
        assert_eq!(s, (1 << 0) | (1 << 4));
        assert_eq!(r, 1 << 0);
        assert_eq!(parse_features(b"!no_such_feature"), Err(&b"no_such_feature"[..]));
        assert_eq!(parse_features(b""), Ok((0, 0)));
    }
}
