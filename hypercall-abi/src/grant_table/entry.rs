//! The grant table itself: v1 entries (`grant_entry_v1`), their `GTF_*` flags, and
//! [`AtomicGrantEntryV1`], the view of an entry in a live (mapped) table that keeps the
//! granter's side of the protocol: frame and domid first, flags last, and revoke only with a
//! compare-exchange that loses to the hypervisor's `GTF_reading`/`GTF_writing`.

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use crate::types::{DomId, GrantFrame, GrantRef, Mfn};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Entries 0..8 are reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved entry granting the console page to the console backend.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = GrantRef(0);
/// Reserved entry granting the XenStore page to xenstored.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = GrantRef(1);
/// v1 entries per 4 KiB table frame.
pub const GNTTAB_ENTRIES_PER_FRAME_V1: u32 = 512;

/// Entry type: unused.
pub const GTF_INVALID: u16 = 0;
/// Entry type: `domid` may map/access `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Entry type: `domid` may transfer a page into `frame`.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// Entry type: transitive grant (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the entry type.
pub const GTF_TYPE_MASK: u16 = 3;
/// `[GST]` Access is read-only.
pub const GTF_READONLY: u16 = 1 << 2;
/// `[XEN]` The grantee has it mapped or is copying for reading.
pub const GTF_READING: u16 = 1 << 3;
/// `[XEN]` The grantee has it mapped or is copying for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// `[GST]` Map write-through.
pub const GTF_PWT: u16 = 1 << 5;
/// `[GST]` Map uncached.
pub const GTF_PCD: u16 = 1 << 6;
/// `[GST]` Map with PAT.
pub const GTF_PAT: u16 = 1 << 7;
/// `[GST]` Sub-page grant (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// Transfer: `[XEN]` committed to transfer.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// Transfer: `[XEN]` transfer complete, `frame` is the new MFN.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// One v1 grant entry (8 bytes), as plain data: a snapshot ([`AtomicGrantEntryV1::load`]) or
/// what a hypervisor copies in. The granter writes `domid` and `frame`, then (after a write
/// barrier) `flags`; the hypervisor sets `GTF_reading`/`GTF_writing` while the grant is in use,
/// and the granter must not revoke an entry with those set. A live table is accessed through
/// [`AtomicGrantEntryV1`], which does that in the right order.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GrantEntryV1 {
    /// `[XEN,GST]` `GTF_*` type and flags.
    pub flags: u16,
    /// `[GST]` Domain being granted access.
    pub domid: DomId,
    /// `[GST]` Frame granted (a GFN, 32 bits in v1); `[XEN]` MFN after a completed transfer.
    pub frame: GrantFrame,
}

crate::assert_layout!(GrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

/// A grant entry in a live table, shared with the hypervisor (which sets `GTF_reading` /
/// `GTF_writing` in `flags` while a grantee uses the frame and, for a transfer, writes
/// `frame`). Every access is atomic, so a `&AtomicGrantEntryV1` can be held while the
/// hypervisor writes. Same layout as [`GrantEntryV1`]; a table frame is a
/// [`GrantTableFrameV1`].
#[repr(C)]
#[derive(Debug, Default)]
pub struct AtomicGrantEntryV1 {
    flags: AtomicU16,
    domid: AtomicU16,
    frame: AtomicU32,
}

crate::assert_layout!(AtomicGrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

/// One 4 KiB frame of a v1 grant table: 512 entries.
pub type GrantTableFrameV1 = [AtomicGrantEntryV1; GNTTAB_ENTRIES_PER_FRAME_V1 as usize];

static_assertions::const_assert_eq!(core::mem::size_of::<GrantTableFrameV1>(), 4096);

/// Why a grant entry could not be written or revoked; carries the flags seen.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GrantEntryError {
    /// The entry is already a grant (its type is not `GTF_invalid`): end that one first.
    NotFree(u16),
    /// A grantee has the frame mapped or is copying it (`GTF_reading`/`GTF_writing`): the
    /// grant cannot be revoked yet. Try again once the grantee has unmapped it.
    InUse(u16),
}

impl AtomicGrantEntryV1 {
    /// An unused entry (all zero), for a table in ordinary memory (tests).
    #[must_use]
    pub const fn new() -> Self {
        Self { flags: AtomicU16::new(0), domid: AtomicU16::new(0), frame: AtomicU32::new(0) }
    }

    /// A snapshot of the entry: flags first (acquire), so a frame read after flags that say
    /// "transfer completed" is the one the hypervisor wrote before setting them.
    #[must_use]
    pub fn load(&self) -> GrantEntryV1 {
        let flags = self.flags.load(Ordering::Acquire);
        GrantEntryV1 {
            flags,
            domid: DomId(self.domid.load(Ordering::Relaxed)),
            frame: GrantFrame(self.frame.load(Ordering::Relaxed)),
        }
    }

    /// Lets `domid` access `frame` (read-only if asked): writes frame and domid, then the flags
    /// with release ordering, so the hypervisor never sees a valid entry with a stale frame or
    /// domid (Xen's "write frame and domid, `wmb()`, then flags"). Refuses an entry that is not
    /// free: overwriting a live grant would change what its grantee has mapped.
    pub fn permit_access(
        &self,
        domid: DomId,
        frame: GrantFrame,
        readonly: bool,
    ) -> Result<(), GrantEntryError> {
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.publish(domid, frame, flags)
    }

    /// Lets `domid` transfer a page into this entry (`GTF_accept_transfer`); the frame field is
    /// the hypervisor's to fill. See [`transfer_result`](Self::transfer_result).
    pub fn accept_transfer(&self, domid: DomId) -> Result<(), GrantEntryError> {
        self.publish(domid, GrantFrame(0), GTF_ACCEPT_TRANSFER)
    }

    fn publish(&self, domid: DomId, frame: GrantFrame, flags: u16) -> Result<(), GrantEntryError> {
        let cur = self.flags.load(Ordering::Relaxed);
        if cur & GTF_TYPE_MASK != GTF_INVALID {
            return Err(GrantEntryError::NotFree(cur));
        }
        self.frame.store(frame.0, Ordering::Relaxed);
        self.domid.store(domid.0, Ordering::Relaxed);
        // Release: the two stores above are visible before the flags that make them valid.
        self.flags.store(flags, Ordering::Release);
        Ok(())
    }

    /// Ends a grant if no grantee is using it: a compare-exchange of the flags to 0 that fails
    /// (and is retried) if the hypervisor changed them meanwhile, and gives up while
    /// `GTF_reading`/`GTF_writing` is set. Once this returns `Ok` the hypervisor will not
    /// start a new use of the frame, so the page may be reused.
    pub fn end_access(&self) -> Result<(), GrantEntryError> {
        let mut cur = self.flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantEntryError::InUse(cur));
            }
            match self.flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// For an entry set up with [`accept_transfer`](Self::accept_transfer): the MFN of the page
    /// transferred in once the hypervisor has completed the transfer, else `None`.
    #[must_use]
    pub fn transfer_result(&self) -> Option<Mfn> {
        let e = self.load();
        let completed =
            e.flags & GTF_TYPE_MASK == GTF_ACCEPT_TRANSFER && e.flags & GTF_TRANSFER_COMPLETED != 0;
        completed.then(|| Mfn::from(e.frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_per_frame() {
        assert_eq!(
            GNTTAB_ENTRIES_PER_FRAME_V1 as usize * core::mem::size_of::<GrantEntryV1>(),
            4096
        );
    }

    #[test]
    fn grant_then_end() {
        let e = AtomicGrantEntryV1::new();
        e.permit_access(DomId(3), GrantFrame(0x1234), true).unwrap();
        let s = e.load();
        assert_eq!(s.flags, GTF_PERMIT_ACCESS | GTF_READONLY);
        assert_eq!((s.domid, s.frame), (DomId(3), GrantFrame(0x1234)));
        assert_eq!(
            e.permit_access(DomId(4), GrantFrame(1), false),
            Err(GrantEntryError::NotFree(GTF_PERMIT_ACCESS | GTF_READONLY))
        );
        // The hypervisor marks it in use: revoking must wait.
        e.flags.fetch_or(GTF_READING, Ordering::SeqCst);
        assert!(matches!(e.end_access(), Err(GrantEntryError::InUse(_))));
        e.flags.fetch_and(!GTF_READING, Ordering::SeqCst);
        assert_eq!(e.end_access(), Ok(()));
        assert_eq!(e.load().flags, 0);
        e.permit_access(DomId(4), GrantFrame(1), false).unwrap();
    }

    #[test]
    fn transfer() {
        let e = AtomicGrantEntryV1::new();
        e.accept_transfer(DomId(0)).unwrap();
        assert_eq!(e.transfer_result(), None);
        e.frame.store(0x99, Ordering::Relaxed);
        e.flags.fetch_or(GTF_TRANSFER_COMPLETED, Ordering::Release);
        assert_eq!(e.transfer_result(), Some(Mfn(0x99)));
    }

    #[test]
    fn atomic_entry_matches_the_wire_layout() {
        let e = AtomicGrantEntryV1::new();
        e.permit_access(DomId(0x0102), GrantFrame(0x0a0b_0c0d), false).unwrap();
        // SAFETY-free check through a snapshot: the snapshot's bytes are the wire bytes.
        assert_eq!(e.load().as_bytes(), &[1, 0, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a]);
    }
}
