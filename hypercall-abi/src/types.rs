//! Newtypes that give ABI integers a meaning: machine, pseudo-physical and guest frame numbers,
//! physical and virtual addresses, domain ids, event-channel ports and grant references.
//!
//! Each one is `#[repr(transparent)]` over the fixed-width integer Xen uses, so it can sit
//! directly inside a `#[repr(C)]` ABI struct and round-trip through zerocopy. Keeping them distinct
//! makes "passed an MFN where a PFN was expected" a type error instead of a memory-safety bug.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes in a page (x86 small page; the only size in the PV ABI's frame numbers).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Mask of the byte offset inside a page.
pub const PAGE_OFFSET_MASK: u64 = PAGE_SIZE - 1;

macro_rules! frame_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(
            Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default,
            FromBytes, IntoBytes, KnownLayout, Immutable,
        )]
        pub struct $name(pub u64);

        impl $name {
            /// The address of the first byte of this frame.
            #[must_use]
            pub const fn addr(self) -> PAddr {
                PAddr(self.0 << PAGE_SHIFT)
            }
        }
    };
}

frame_newtype!(
    /// Machine frame number: a real (host) page of RAM, `machine address >> 12`.
    Mfn
);
frame_newtype!(
    /// Pseudo-physical frame number: an index into a PV guest's own contiguous view of its
    /// memory (the P2M list maps it to an [`Mfn`]).
    Pfn
);
frame_newtype!(
    /// Guest frame number: what a guest names a frame with in an ABI field. For a PV guest
    /// (not auto-translated) this is an MFN; the type marks "unvalidated, guest-supplied".
    Gfn
);

impl Mfn {
    /// Xen's "no frame" marker (all ones), used in P2M lists for holes.
    pub const INVALID: Mfn = Mfn(u64::MAX);
}

impl Pfn {
    /// "No frame" marker, as in the M2P table for frames not owned by a PV guest.
    pub const INVALID: Pfn = Pfn(u64::MAX);
}

/// A physical address. In this ABI it is a *machine* address unless a field says otherwise
/// (e.g. `start_info.shared_info`, `mmu_update.ptr`).
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct PAddr(pub u64);

impl PAddr {
    /// The frame holding this address.
    #[must_use]
    pub const fn frame(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }

    /// Byte offset inside the page.
    #[must_use]
    pub const fn page_offset(self) -> u64 {
        self.0 & PAGE_OFFSET_MASK
    }

    /// True if the address is page aligned.
    #[must_use]
    pub const fn is_page_aligned(self) -> bool {
        self.page_offset() == 0
    }
}

/// A guest (or hypervisor) virtual address.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct VAddr(pub u64);

impl VAddr {
    /// Byte offset inside the page.
    #[must_use]
    pub const fn page_offset(self) -> u64 {
        self.0 & PAGE_OFFSET_MASK
    }

    /// True if the address is page aligned.
    #[must_use]
    pub const fn is_page_aligned(self) -> bool {
        self.page_offset() == 0
    }

    /// True if bits 63..47 are all equal (x86_64 4-level canonical form). A non-canonical
    /// return address must never reach `sysret` (CVE-2012-0217).
    #[must_use]
    pub const fn is_canonical(self) -> bool {
        let top = (self.0 as i64) >> 47;
        top == 0 || top == -1
    }
}

/// A domain id (`domid_t`, 16 bits). Ids at or above [`DomId::FIRST_RESERVED`] are special.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct DomId(pub u16);

impl DomId {
    /// The initial control domain.
    pub const DOM0: DomId = DomId(0);
    /// Ids `>=` this cannot name an ordinary domain.
    pub const FIRST_RESERVED: DomId = DomId(0x7FF0);
    /// "The calling domain" in any field that takes a domid.
    pub const SELF_: DomId = DomId(0x7FF0);
    /// Pseudo-domain owning I/O memory (MMIO); as a foreigndom it allows only I/O mappings.
    pub const IO: DomId = DomId(0x7FF1);
    /// Pseudo-domain owning hypervisor pages a privileged guest may map (e.g. the M2P).
    pub const XEN: DomId = DomId(0x7FF2);
    /// Pseudo-domain owning shared copy-on-write pages (memory sharing).
    pub const COW: DomId = DomId(0x7FF3);
    /// Explicitly "no domain".
    pub const INVALID: DomId = DomId(0x7FF4);
    /// Wildcard used in XenStore permissions (Xen 4.17+).
    pub const ANY: DomId = DomId(0x7FF5);
    /// The idle domain (scheduler internal).
    pub const IDLE: DomId = DomId(0x7FFF);

    /// True for an id that can name a real domain (below [`DomId::FIRST_RESERVED`]).
    #[must_use]
    pub const fn is_ordinary(self) -> bool {
        self.0 < Self::FIRST_RESERVED.0
    }
}

/// An event-channel port number (`evtchn_port_t`, 32 bits). Port 0 is never bound.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct EvtchnPort(pub u32);

/// A grant reference (`grant_ref_t`, 32 bits): an index into the granting domain's grant table.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct GrantRef(pub u32);

static_assertions::assert_eq_size!(Mfn, u64);
static_assertions::assert_eq_size!(Pfn, u64);
static_assertions::assert_eq_size!(Gfn, u64);
static_assertions::assert_eq_size!(PAddr, u64);
static_assertions::assert_eq_size!(VAddr, u64);
static_assertions::assert_eq_size!(DomId, u16);
static_assertions::assert_eq_size!(EvtchnPort, u32);
static_assertions::assert_eq_size!(GrantRef, u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_address_round_trip() {
        assert_eq!(Mfn(0x1234).addr(), PAddr(0x123_4000));
        assert_eq!(PAddr(0x123_4567).frame(), Mfn(0x1234));
        assert_eq!(PAddr(0x123_4567).page_offset(), 0x567);
        assert!(PAddr(0x5000).is_page_aligned());
    }

    #[test]
    fn canonical() {
        assert!(VAddr(0x0000_7FFF_FFFF_F000).is_canonical());
        assert!(VAddr(0xFFFF_8000_0000_0000).is_canonical());
        assert!(!VAddr(0x0000_8000_0000_0000).is_canonical());
    }

    #[test]
    fn domid_classes() {
        assert!(DomId(0).is_ordinary());
        assert!(DomId(0x7FEF).is_ordinary());
        assert!(!DomId::SELF_.is_ordinary());
        assert_eq!(DomId::SELF_, DomId::FIRST_RESERVED);
    }
}
