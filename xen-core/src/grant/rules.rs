//! Grant-table rules that need no hardware: deciding whether a shared grant entry lets a domain
//! map or copy, the flag update that claims it (applied by the caller with one
//! compare-and-swap, so the granting guest cannot change the entry between check and use), and
//! the bookkeeping of who holds what: per granted ref the mapping counts ("active" entries),
//! per mapping domain its handles ("maptrack").

use alloc::sync::Arc;
use alloc::vec::Vec;

use hypercall_abi::grant_table::{
    GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_NO_SPACE, GNTST_PERMISSION_DENIED, GTF_PERMIT_ACCESS,
    GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};
use hypercall_abi::{DomId, Mfn};

use crate::mm::quota::{HeapQuota, try_grow};

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
    /// Where it is mapped in the mapper's address space (0: not mapped there, a device
    /// mapping only).
    pub host_addr: u64,
    pub readonly: bool,
    /// Also mapped for a device (`GNTMAP_device_map`): the mapping holds a reference on the
    /// frame of its own, for the device's use.
    pub device: bool,
}

/// One maptrack slot: a mapping, or the next free slot (`NO_SLOT` ends the list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Used(MapEntry),
    Free { next: u32 },
}

const NO_SLOT: u32 = u32::MAX;
/// Maptrack slots added at a time.
const MAPTRACK_CHUNK: usize = 256;

/// A domain's grant bookkeeping (the shared entries themselves live in guest-visible frames).
/// Its memory is bounded (refs by the table's frames, maps by `max_maps`), charged to the
/// domain's quota before it is taken, and taken fallibly: running out is `GNTST_NO_SPACE`.
#[derive(Debug)]
pub struct Book {
    /// Per granted ref of this domain, how others use it: one entry per ref of the table,
    /// made when the table grows.
    active: Vec<Active>,
    /// Mappings this domain made, by handle, with a free list through the unused slots.
    maptrack: Vec<Slot>,
    free_head: u32,
    max_maps: usize,
    quota: Arc<HeapQuota>,
    /// Bytes of `quota` this book holds (given back when it is dropped).
    charged: usize,
}

impl Book {
    pub fn new(max_maps: usize, quota: Arc<HeapQuota>) -> Self {
        Book {
            active: Vec::new(),
            maptrack: Vec::new(),
            free_head: NO_SLOT,
            max_maps,
            quota,
            charged: 0,
        }
    }

    /// An empty book on the same quota (what a dying domain's table keeps while its old book
    /// is taken apart): allocates nothing.
    pub fn empty_like(&self) -> Self {
        Book::new(self.max_maps, self.quota.clone())
    }

    /// Makes room for `refs` granted refs (the table grew to that many entries).
    pub fn grow_active(&mut self, refs: usize) -> Result<(), i16> {
        if refs <= self.active.len() {
            return Ok(());
        }
        let more = refs - self.active.len();
        self.charged +=
            try_grow(&mut self.active, more, &self.quota).map_err(|_| GNTST_NO_SPACE)?;
        self.active.resize(refs, Active::default());
        Ok(())
    }

    /// Records a new mapping; returns its handle.
    pub fn add_map(&mut self, m: MapEntry) -> Result<u32, i16> {
        if self.free_head == NO_SLOT {
            let room = self.max_maps.saturating_sub(self.maptrack.len()).min(MAPTRACK_CHUNK);
            if room == 0 {
                return Err(GNTST_NO_SPACE);
            }
            self.charged +=
                try_grow(&mut self.maptrack, room, &self.quota).map_err(|_| GNTST_NO_SPACE)?;
            // The free list is empty here: the new slots become it, lowest first.
            let first = self.maptrack.len();
            let end = first + room;
            for i in first..end {
                let next = if i + 1 < end { (i + 1) as u32 } else { NO_SLOT };
                self.maptrack.push(Slot::Free { next });
            }
            self.free_head = first as u32;
        }
        let h = self.free_head;
        let Slot::Free { next } = self.maptrack[h as usize] else {
            return Err(GNTST_NO_SPACE);
        };
        self.free_head = next;
        self.maptrack[h as usize] = Slot::Used(m);
        Ok(h)
    }

    /// Looks a handle up (guest input: bounds checked).
    pub fn map(&self, handle: u32) -> Result<MapEntry, i16> {
        match self.maptrack.get(handle as usize) {
            Some(Slot::Used(m)) => Ok(*m),
            _ => Err(GNTST_BAD_HANDLE),
        }
    }

    pub fn remove_map(&mut self, handle: u32) -> Result<MapEntry, i16> {
        let m = self.map(handle)?;
        self.maptrack[handle as usize] = Slot::Free { next: self.free_head };
        self.free_head = handle;
        Ok(m)
    }

    /// Every mapping still held (for teardown).
    pub fn maps(&self) -> impl Iterator<Item = (u32, MapEntry)> + '_ {
        self.maptrack.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Used(m) => Some((i as u32, *m)),
            Slot::Free { .. } => None,
        })
    }

    /// Counts a new user of granted ref `gref` backed by `frame`. The frame of an active ref is
    /// fixed: a later claim naming another frame is refused (the granter changed the entry
    /// under a live mapping).
    pub fn pin(&mut self, gref: u32, frame: Mfn, readonly: bool) -> Result<(), i16> {
        let a = self.active.get_mut(gref as usize).ok_or(GNTST_BAD_GNTREF)?;
        if a.readers == 0 && a.writers == 0 {
            a.frame = frame;
        } else if a.frame != frame {
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
        let a = self.active.get(gref as usize).copied().unwrap_or_default();
        release_mask(a.readers > 0, a.writers > 0)
    }

    /// Drops a user of `gref`; returns the flags to clear in the shared entry.
    pub fn unpin(&mut self, gref: u32, readonly: bool) -> u16 {
        let Some(a) = self.active.get_mut(gref as usize) else { return 0 };
        if a.readers == 0 && a.writers == 0 {
            return 0;
        }
        if readonly {
            a.readers = a.readers.saturating_sub(1);
        } else {
            a.writers = a.writers.saturating_sub(1);
        }
        release_mask(a.readers > 0, a.writers > 0)
    }
}

impl Drop for Book {
    fn drop(&mut self) {
        self.quota.uncharge(self.charged);
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
        let mut b = Book::new(4, Arc::new(HeapQuota::new(1 << 20)));
        b.grow_active(512).unwrap();
        b.pin(8, Mfn(5), true).unwrap();
        b.pin(8, Mfn(5), false).unwrap();
        assert_eq!(b.pin(8, Mfn(6), true), Err(GNTST_BAD_GNTREF));
        assert_eq!(b.unpin(8, false), GTF_WRITING, "reader remains");
        assert_eq!(b.unpin(8, true), GTF_WRITING | GTF_READING);
        assert_eq!(b.active[8], Active { frame: Mfn(5), readers: 0, writers: 0 });
        assert_eq!(b.unpin(8, true), 0, "unknown ref: nothing to clear");
    }

    #[test]
    fn maptrack_handles_are_bounded_and_checked() {
        let mut b = Book::new(2, Arc::new(HeapQuota::new(1 << 20)));
        let m = MapEntry {
            granter: G,
            gref: 8,
            frame: Mfn(5),
            host_addr: 0x1000,
            readonly: true,
            device: false,
        };
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

    #[test]
    fn a_book_takes_only_what_its_quota_allows_and_gives_it_back() {
        let q = Arc::new(HeapQuota::new(8 << 10));
        let mut b = Book::new(4096, q.clone());
        b.grow_active(512).unwrap();
        assert_eq!(b.grow_active(1024), Err(GNTST_NO_SPACE), "a second frame's entries");
        let m = MapEntry {
            granter: G,
            gref: 8,
            frame: Mfn(5),
            host_addr: 0x1000,
            readonly: true,
            device: false,
        };
        assert_eq!(b.add_map(m), Err(GNTST_NO_SPACE), "no quota left for maptrack");
        assert!(q.used() > 0);
        drop(b);
        assert_eq!(q.used(), 0);
    }
}
