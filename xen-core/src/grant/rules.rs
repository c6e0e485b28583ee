//! Grant-table rules that need no hardware: deciding whether a shared grant entry lets a domain
//! map or copy, the flag update that claims it (applied by the caller with one
//! compare-and-swap, so the granting guest cannot change the entry between check and use), and
//! the bookkeeping of who holds what: per granted ref the mapping counts ("active" entries),
//! per mapping domain its handles ("maptrack").

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hypercall_abi::grant_table::{
    GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_NO_SPACE, GNTST_PERMISSION_DENIED, GTF_PERMIT_ACCESS,
    GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};
use hypercall_abi::{DomId, Mfn};

/// A grant_entry_v1 as one 64-bit word: flags in bits 0-15, domid 16-31, frame 32-63.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry(pub u64);

impl Entry {
    pub fn new(flags: u16, domid: DomId, frame: u32) -> Self {
        Entry(u64::from(flags) | (u64::from(domid.0) << 16) | (u64::from(frame) << 32))
    }
    pub fn flags(self) -> u16 {
        self.0 as u16
    }
    pub fn domid(self) -> DomId {
        DomId((self.0 >> 16) as u16)
    }
    pub fn frame(self) -> Mfn {
        Mfn(self.0 >> 32)
    }
    fn with_flags(self, flags: u16) -> Self {
        Entry((self.0 & !0xFFFF) | u64::from(flags))
    }
}

/// Checks that `entry` grants `to` access (write access unless `readonly`) and returns the entry
/// with the reading/writing flags the hypervisor sets while it uses the frame.
pub fn claim(entry: Entry, to: DomId, readonly: bool) -> Result<Entry, i16> {
    let f = entry.flags();
    if f & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || entry.domid() != to {
        return Err(GNTST_PERMISSION_DENIED);
    }
    if !readonly && f & GTF_READONLY != 0 {
        return Err(GNTST_PERMISSION_DENIED);
    }
    let mut nf = f | GTF_READING;
    if !readonly {
        nf |= GTF_WRITING;
    }
    Ok(entry.with_flags(nf))
}

/// The flags to clear on a granted ref once its last reader / writer lets go.
pub fn release_mask(still_readers: bool, still_writers: bool) -> u16 {
    let mut m = 0;
    if !still_writers {
        m |= GTF_WRITING;
    }
    if !still_readers && !still_writers {
        m |= GTF_READING;
    }
    m
}

/// How a granted ref of this domain is in use by others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Active {
    pub frame: Mfn,
    pub readers: u32,
    pub writers: u32,
}

/// One mapping a domain holds of another's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub granter: DomId,
    pub gref: u32,
    pub frame: Mfn,
    pub host_addr: u64,
    pub readonly: bool,
}

/// A domain's grant bookkeeping (the shared entries themselves live in guest-visible frames).
#[derive(Clone, Debug, Default)]
pub struct Book {
    /// Granted refs of this domain that are mapped somewhere.
    active: BTreeMap<u32, Active>,
    /// Mappings this domain made, by handle.
    maptrack: Vec<Option<MapEntry>>,
    max_maps: usize,
}

impl Book {
    pub fn new(max_maps: usize) -> Self {
        Book { active: BTreeMap::new(), maptrack: Vec::new(), max_maps }
    }

    /// Records a new mapping; returns its handle.
    pub fn add_map(&mut self, m: MapEntry) -> Result<u32, i16> {
        if let Some(i) = self.maptrack.iter().position(Option::is_none) {
            self.maptrack[i] = Some(m);
            return Ok(i as u32);
        }
        if self.maptrack.len() >= self.max_maps {
            return Err(GNTST_NO_SPACE);
        }
        self.maptrack.push(Some(m));
        Ok((self.maptrack.len() - 1) as u32)
    }

    /// Looks a handle up (guest input: bounds checked).
    pub fn map(&self, handle: u32) -> Result<MapEntry, i16> {
        self.maptrack.get(handle as usize).copied().flatten().ok_or(GNTST_BAD_HANDLE)
    }

    pub fn remove_map(&mut self, handle: u32) -> Result<MapEntry, i16> {
        let slot = self.maptrack.get_mut(handle as usize).ok_or(GNTST_BAD_HANDLE)?;
        slot.take().ok_or(GNTST_BAD_HANDLE)
    }

    /// Every mapping still held (for teardown).
    pub fn maps(&self) -> impl Iterator<Item = (u32, MapEntry)> + '_ {
        self.maptrack.iter().enumerate().filter_map(|(i, m)| m.map(|m| (i as u32, m)))
    }

    /// Counts a new user of granted ref `gref` backed by `frame`. The frame of an active ref is
    /// fixed: a later claim naming another frame is refused (the granter changed the entry
    /// under a live mapping).
    pub fn pin(&mut self, gref: u32, frame: Mfn, readonly: bool) -> Result<(), i16> {
        let a = self.active.entry(gref).or_insert(Active { frame, readers: 0, writers: 0 });
        if a.frame != frame {
            return Err(GNTST_BAD_GNTREF);
        }
        if readonly {
            a.readers += 1;
        } else {
            a.writers += 1;
        }
        Ok(())
    }

    /// The flags to clear from `gref`'s shared entry given the pins it holds now: what a
    /// claim that could not be pinned must undo (others may still hold the ref).
    pub fn unclaimed_mask(&self, gref: u32) -> u16 {
        let a = self.active.get(&gref).copied().unwrap_or_default();
        release_mask(a.readers > 0, a.writers > 0)
    }

    /// Drops a user of `gref`; returns the flags to clear in the shared entry.
    pub fn unpin(&mut self, gref: u32, readonly: bool) -> u16 {
        let Some(a) = self.active.get_mut(&gref) else { return 0 };
        if readonly {
            a.readers = a.readers.saturating_sub(1);
        } else {
            a.writers = a.writers.saturating_sub(1);
        }
        let mask = release_mask(a.readers > 0, a.writers > 0);
        if a.readers == 0 && a.writers == 0 {
            self.active.remove(&gref);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: DomId = DomId(1);
    const M: DomId = DomId(2);

    #[test]
    fn claims_follow_the_entry() {
        let e = Entry::new(GTF_PERMIT_ACCESS, M, 0x1234);
        let c = claim(e, M, false).unwrap();
        assert_eq!(c.flags(), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        assert_eq!(c.frame(), Mfn(0x1234));
        assert_eq!(claim(e, DomId(3), true), Err(GNTST_PERMISSION_DENIED), "wrong domain");
        let ro = Entry::new(GTF_PERMIT_ACCESS | GTF_READONLY, M, 7);
        assert_eq!(
            claim(ro, M, false),
            Err(GNTST_PERMISSION_DENIED),
            "write through a readonly grant"
        );
        assert_eq!(claim(ro, M, true).unwrap().flags() & GTF_WRITING, 0);
        assert_eq!(
            claim(Entry::new(0, M, 7), M, true),
            Err(GNTST_PERMISSION_DENIED),
            "invalid entry"
        );
        assert_eq!(
            claim(Entry::new(2, M, 7), M, true),
            Err(GNTST_PERMISSION_DENIED),
            "transfer entry"
        );
    }

    #[test]
    fn pins_and_release_flags() {
        let mut b = Book::new(4);
        b.pin(8, Mfn(5), true).unwrap();
        b.pin(8, Mfn(5), false).unwrap();
        assert_eq!(b.pin(8, Mfn(6), true), Err(GNTST_BAD_GNTREF));
        assert_eq!(b.unpin(8, false), GTF_WRITING, "reader remains");
        assert_eq!(b.unpin(8, true), GTF_WRITING | GTF_READING);
        assert!(b.active.is_empty());
        assert_eq!(b.unpin(8, true), 0, "unknown ref: nothing to clear");
    }

    #[test]
    fn maptrack_handles_are_bounded_and_checked() {
        let mut b = Book::new(2);
        let m = MapEntry { granter: G, gref: 8, frame: Mfn(5), host_addr: 0x1000, readonly: true };
        let h0 = b.add_map(m).unwrap();
        let h1 = b.add_map(m).unwrap();
        assert_eq!(b.add_map(m), Err(GNTST_NO_SPACE));
        assert_eq!(b.map(h1).unwrap(), m);
        assert_eq!(b.map(7), Err(GNTST_BAD_HANDLE));
        assert_eq!(b.map(u32::MAX), Err(GNTST_BAD_HANDLE));
        b.remove_map(h0).unwrap();
        assert_eq!(b.remove_map(h0), Err(GNTST_BAD_HANDLE), "double unmap");
        assert_eq!(b.add_map(m).unwrap(), h0, "handles are reused");
        assert_eq!(b.maps().count(), 2);
    }
}
