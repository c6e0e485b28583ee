//! Newtypes that give ABI integers a meaning: machine, pseudo-physical and guest frame numbers
//! (and the 32-bit frame field of a v1 grant entry), physical and virtual addresses, domain ids,
//! event-channel ports, grant references and guest handles.
//!
//! Each one is `#[repr(transparent)]` over the fixed-width integer Xen uses, so it can sit
//! directly inside a `#[repr(C)]` ABI struct and round-trip through zerocopy. Keeping them distinct
//! makes "passed an MFN where a PFN was expected" a type error instead of a memory-safety bug.

use core::fmt;
use core::marker::PhantomData;

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

/// In a PV guest (not auto-translated) the frame numbers it writes into ABI fields are machine
/// frame numbers: the GFN of a frame is its MFN.
impl From<Mfn> for Gfn {
    fn from(mfn: Mfn) -> Gfn {
        Gfn(mfn.0)
    }
}

/// A frame number in the 32 bits a v1 grant entry has for it (`grant_entry_v1.frame`). Frames
/// at or above 2^32 (16 TiB of machine memory) cannot be granted with a v1 entry; the checked
/// conversion from [`Gfn`] says so instead of truncating.
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
pub struct GrantFrame(pub u32);

/// A frame number too large for the field it was meant for (a [`GrantFrame`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameTooLarge(pub u64);

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {:#x} does not fit in 32 bits", self.0)
    }
}

impl TryFrom<Gfn> for GrantFrame {
    type Error = FrameTooLarge;

    fn try_from(gfn: Gfn) -> Result<GrantFrame, FrameTooLarge> {
        u32::try_from(gfn.0).map(GrantFrame).map_err(|_| FrameTooLarge(gfn.0))
    }
}

impl TryFrom<Mfn> for GrantFrame {
    type Error = FrameTooLarge;

    fn try_from(mfn: Mfn) -> Result<GrantFrame, FrameTooLarge> {
        GrantFrame::try_from(Gfn::from(mfn))
    }
}

impl From<GrantFrame> for Gfn {
    fn from(f: GrantFrame) -> Gfn {
        Gfn(u64::from(f.0))
    }
}

impl From<GrantFrame> for Mfn {
    /// The frame a v1 entry names, as the MFN it is for a PV guest (and, after a completed
    /// transfer, the MFN the hypervisor wrote there).
    fn from(f: GrantFrame) -> Mfn {
        Mfn(u64::from(f.0))
    }
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

/// A guest handle (`XEN_GUEST_HANDLE(T)`): the guest-virtual address of an array of `T` that
/// the hypervisor reads or writes during a hypercall. The type parameter only says what the
/// array holds; the handle itself is the 64-bit address on the wire, and to the hypervisor it
/// is a claim like any other guest value (checked, copied once).
///
/// The guest wrappers of feature `guest` make handles from slices they borrow for the call;
/// [`GuestHandle::from_slice`] is the same for a kernel filling an ABI struct itself.
#[repr(transparent)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GuestHandle<T> {
    addr: u64,
    _elem: PhantomData<fn() -> T>,
}

impl<T> GuestHandle<T> {
    /// The NULL handle (an op without that array, or "no buffer").
    pub const NULL: GuestHandle<T> = GuestHandle::from_raw(0);

    /// A handle from the raw address a guest passed.
    #[must_use]
    pub const fn from_raw(addr: u64) -> Self {
        GuestHandle { addr, _elem: PhantomData }
    }

    /// A handle on `s`'s elements. The hypervisor may only read them (the caller keeps `s`
    /// borrowed for the call).
    #[must_use]
    pub fn from_slice(s: &[T]) -> Self {
        Self::from_raw(s.as_ptr() as u64)
    }

    /// A handle on `s`'s elements, which the hypervisor may write (the caller keeps `s`
    /// borrowed mutably for the call).
    #[must_use]
    pub fn from_mut_slice(s: &mut [T]) -> Self {
        Self::from_raw(s.as_mut_ptr() as u64)
    }

    /// The address as it travels on the wire.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.addr
    }

    /// The address of element `i` (`None` if it overflows): where the hypervisor copies the
    /// `i`th element from or to.
    #[must_use]
    pub const fn elem_addr(self, i: u64) -> Option<u64> {
        match i.checked_mul(core::mem::size_of::<T>() as u64) {
            Some(off) => self.addr.checked_add(off),
            None => None,
        }
    }

    /// True for the NULL handle.
    #[must_use]
    pub const fn is_null(self) -> bool {
        self.addr == 0
    }
}

// Written out: derives would demand `T: Clone` etc., but a handle is an address whatever `T` is.
impl<T> Clone for GuestHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GuestHandle<T> {}
impl<T> PartialEq for GuestHandle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}
impl<T> Eq for GuestHandle<T> {}
impl<T> Default for GuestHandle<T> {
    fn default() -> Self {
        Self::NULL
    }
}
impl<T> fmt::Debug for GuestHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestHandle({:#x})", self.addr)
    }
}

static_assertions::assert_eq_size!(Mfn, u64);
static_assertions::assert_eq_size!(Pfn, u64);
static_assertions::assert_eq_size!(Gfn, u64);
static_assertions::assert_eq_size!(PAddr, u64);
static_assertions::assert_eq_size!(VAddr, u64);
static_assertions::assert_eq_size!(DomId, u16);
static_assertions::assert_eq_size!(EvtchnPort, u32);
static_assertions::assert_eq_size!(GrantRef, u32);
static_assertions::assert_eq_size!(GrantFrame, u32);
static_assertions::assert_eq_size!(GuestHandle<[u8; 100]>, u64);

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
    fn grant_frames_convert_checked() {
        assert_eq!(GrantFrame::try_from(Gfn(0xFFFF_FFFF)), Ok(GrantFrame(0xFFFF_FFFF)));
        assert_eq!(GrantFrame::try_from(Gfn(1 << 32)), Err(FrameTooLarge(1 << 32)));
        assert_eq!(GrantFrame::try_from(Mfn(7)), Ok(GrantFrame(7)));
        assert_eq!(Gfn::from(GrantFrame(9)), Gfn(9));
        assert_eq!(Gfn::from(Mfn(9)), Gfn(9));
    }

    #[test]
    fn guest_handles() {
        let v = [1u32, 2, 3];
        let h = GuestHandle::from_slice(&v);
        assert_eq!(h.raw(), v.as_ptr() as u64);
        assert_eq!(h.elem_addr(2), Some(v.as_ptr() as u64 + 8));
        assert_eq!(GuestHandle::<u64>::from_raw(u64::MAX - 4).elem_addr(1), None);
        assert!(GuestHandle::<u8>::NULL.is_null());
        assert_eq!(GuestHandle::<u16>::from_raw(0x40).as_bytes(), &0x40u64.to_le_bytes());
    }

    #[test]
    fn domid_classes() {
        assert!(DomId(0).is_ordinary());
        assert!(DomId(0x7FEF).is_ordinary());
        assert!(!DomId::SELF_.is_ordinary());
        assert_eq!(DomId::SELF_, DomId::FIRST_RESERVED);
    }
}
