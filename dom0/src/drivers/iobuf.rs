//! A back end's I/O buffer: machine-contiguous pages of dom0's own that a device reads and
//! writes in place (no bounce), filled from and emptied into other domains' granted pages by
//! `GNTTABOP_copy`. Copying (rather than mapping the guest's pages) means a request leaves no
//! mapping behind whatever the frontend does, and a bad grant ref is only a failed copy.
//! The other path Xen offers, [`GrantPath::Map`], maps each granted page, copies it with the
//! CPU and unmaps it before the call returns (what Linux's blkback does without persistent
//! grants); it exists so the two can be measured against each other on a real I/O path
//! (`blkback_grants=map`, docs/BENCHMARKS.md).
//!
//! [`pieces`] cuts a request's segments (each a grant, an offset and a length within a page)
//! into copy operations that cross no page boundary on either side, as the hypervisor
//! requires; it is hardware-free and host-tested. The rest is built for dom0 only, and is
//! where the `unsafe` is: the slices over the buffer and the batched copy into it.

use hypercall_abi::GrantRef;

/// One stretch of a request's data: `len` bytes at `offset` in the page granted as `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub gref: GrantRef,
    pub offset: u16,
    pub len: u16,
}

/// One copy: `len` bytes between `gref` at `gref_offset` and the buffer at `buf_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub gref: GrantRef,
    pub gref_offset: u16,
    pub buf_offset: usize,
    pub len: u16,
}

/// The copies that move `segs`, laid end to end from `start` in the buffer, with none
/// crossing a buffer page (a segment is within its own page already: the caller validated it).
pub fn pieces(segs: &[Segment], start: usize, out: &mut alloc::vec::Vec<Piece>) {
    out.clear();
    let mut at = start;
    for s in segs {
        let (mut done, len) = (0u16, s.len);
        while done < len {
            let room = 4096 - (at % 4096);
            let n = usize::from(len - done).min(room) as u16;
            out.push(Piece { gref: s.gref, gref_offset: s.offset + done, buf_offset: at, len: n });
            done += n;
            at += usize::from(n);
        }
    }
}

#[cfg(target_os = "none")]
pub use machine::*;

#[cfg(target_os = "none")]
mod machine {
    use alloc::vec::Vec;

    use hypercall_abi::grant_table::{
        GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTST_GENERAL_ERROR, GNTST_OKAY, GnttabCopy,
        GnttabCopyPtr,
    };
    use hypercall_abi::{DomId, guest};
    use pv_guest::grant;

    use super::{Piece, Segment, pieces};
    use crate::drivers::dma::{self, DmaBuf};

    /// Which way a copy goes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Direction {
        /// From the guest's pages into the buffer (a write to the disk).
        FromGuest,
        /// From the buffer into the guest's pages (a read from the disk).
        ToGuest,
    }

    /// How data moves between a guest's grants and the buffer.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum GrantPath {
        /// One batched `GNTTABOP_copy` per call: the hypervisor copies.
        #[default]
        Copy,
        /// Each segment's page mapped (`GNTTABOP_map_grant_ref`), copied by dom0, unmapped
        /// again before the call returns.
        Map,
    }

    /// A machine-contiguous buffer of dom0's own pages.
    pub struct IoBuf {
        buf: DmaBuf,
        pieces: Vec<Piece>,
        ops: Vec<GnttabCopy>,
        path: GrantPath,
    }

    impl IoBuf {
        /// `pages` pages (a power of two), or None when none can be had.
        pub fn new(pages: usize) -> Option<Self> {
            Some(IoBuf {
                buf: dma::alloc(pages)?,
                pieces: Vec::new(),
                ops: Vec::new(),
                path: GrantPath::Copy,
            })
        }

        /// Chooses how later copies move the data.
        pub fn set_path(&mut self, path: GrantPath) {
            self.path = path;
        }

        /// Size in bytes.
        pub fn len(&self) -> usize {
            self.buf.pages * 4096
        }

        pub fn is_empty(&self) -> bool {
            self.buf.pages == 0
        }

        /// The first `len` bytes (clamped to the buffer).
        pub fn bytes(&self, len: usize) -> &[u8] {
            let len = len.min(self.len());
            #[allow(unsafe_code)]
            // SAFETY: the pages are dom0's own, mapped for its life and owned by this buffer
            // alone; the shared borrow of `self` keeps the copies (which take `&mut self`)
            // from writing while the slice lives.
            unsafe {
                core::slice::from_raw_parts(self.buf.va as *const u8, len)
            }
        }

        /// The first `len` bytes (clamped), writable.
        pub fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
            let len = len.min(self.len());
            #[allow(unsafe_code)]
            // SAFETY: as in `bytes`, and the unique borrow of `self` makes this the only view.
            unsafe {
                core::slice::from_raw_parts_mut(self.buf.va as *mut u8, len)
            }
        }

        /// Copies `segs` of `dom`'s grants into (or out of) the buffer, laid end to end from
        /// its start, in one batched `GNTTABOP_copy`. The total must fit the buffer. Err: the
        /// first failing copy's `GNTST_*` status (a bad grant ref, a read-only grant written).
        pub fn copy(&mut self, dom: DomId, segs: &[Segment], dir: Direction) -> Result<(), i16> {
            self.copy_at(dom, segs, dir, 0)
        }

        /// [`IoBuf::copy`] with the segments laid from `start` in the buffer.
        pub fn copy_at(
            &mut self,
            dom: DomId,
            segs: &[Segment],
            dir: Direction,
            start: usize,
        ) -> Result<(), i16> {
            let total: usize = segs.iter().map(|s| usize::from(s.len)).sum();
            if start.checked_add(total).is_none_or(|end| end > self.len()) {
                return Err(GNTST_GENERAL_ERROR);
            }
            if self.path == GrantPath::Map {
                return self.map_copy_at(dom, segs, dir, start);
            }
            pieces(segs, start, &mut self.pieces);
            self.ops.clear();
            let base = self.buf.maddr >> 12;
            for p in &self.pieces {
                let frame = base + (p.buf_offset / 4096) as u64;
                let mine = GnttabCopyPtr::gmfn(
                    DomId::SELF_,
                    hypercall_abi::Gfn(frame),
                    (p.buf_offset % 4096) as u16,
                );
                let theirs = GnttabCopyPtr::gref(dom, p.gref, p.gref_offset);
                self.ops.push(match dir {
                    Direction::FromGuest => GnttabCopy {
                        source: theirs,
                        dest: mine,
                        len: p.len,
                        flags: GNTCOPY_SOURCE_GREF,
                        ..Default::default()
                    },
                    Direction::ToGuest => GnttabCopy {
                        source: mine,
                        dest: theirs,
                        len: p.len,
                        flags: GNTCOPY_DEST_GREF,
                        ..Default::default()
                    },
                });
            }
            if self.ops.is_empty() {
                return Ok(());
            }
            #[allow(unsafe_code)]
            // SAFETY: the ops match GNTTABOP_copy; this side of each is a frame of this
            // buffer, which `&mut self` keeps every slice of from existing during the call;
            // the other side is another domain's grant, not memory of dom0's.
            let r = unsafe { guest::gnttab_copy(&mut self.ops) };
            if r.is_err() {
                return Err(GNTST_GENERAL_ERROR);
            }
            match self.ops.iter().find(|o| o.status != GNTST_OKAY) {
                Some(o) => Err(o.status),
                None => Ok(()),
            }
        }
    }

    impl IoBuf {
        /// [`IoBuf::copy_at`] by mapping: each segment's page is mapped (read-only when only
        /// read), copied with the CPU and unmapped before the next, so no mapping outlives
        /// the call whatever the frontend does. The range was checked by the caller.
        fn map_copy_at(
            &mut self,
            dom: DomId,
            segs: &[Segment],
            dir: Direction,
            start: usize,
        ) -> Result<(), i16> {
            let mut at = start;
            for s in segs {
                let (off, len) = (usize::from(s.offset), usize::from(s.len));
                if off + len > 4096 {
                    return Err(GNTST_GENERAL_ERROR);
                }
                let m = grant::map(dom, s.gref, dir == Direction::FromGuest)?;
                let page = m.page();
                match dir {
                    Direction::FromGuest => page.read(off, &mut self.bytes_mut(at + len)[at..]),
                    Direction::ToGuest => page.write(off, &self.bytes(at + len)[at..]),
                }
                // A refused unmap leaves the slot taken (pv-guest's `grant::unmap`); the data
                // moved, so the request itself stands.
                let _ = grant::unmap(m);
                at += len;
            }
            Ok(())
        }
    }

    impl Drop for IoBuf {
        fn drop(&mut self) {
            dma::free(self.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(gref: u32, offset: u16, len: u16) -> Segment {
        Segment { gref: GrantRef(gref), offset, len }
    }

    #[test]
    fn whole_pages_are_one_piece_each() {
        let mut out = alloc::vec::Vec::new();
        pieces(&[seg(1, 0, 4096), seg(2, 0, 4096)], 0, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1],
            Piece { gref: GrantRef(2), gref_offset: 0, buf_offset: 4096, len: 4096 }
        );
    }

    #[test]
    fn a_segment_crossing_a_buffer_page_is_cut() {
        let mut out = alloc::vec::Vec::new();
        // 3 sectors, then 8 sectors from sector 0: the second runs over the buffer's page.
        pieces(&[seg(1, 512, 1536), seg(2, 0, 4096)], 0, &mut out);
        assert_eq!(
            out,
            [
                Piece { gref: GrantRef(1), gref_offset: 512, buf_offset: 0, len: 1536 },
                Piece { gref: GrantRef(2), gref_offset: 0, buf_offset: 1536, len: 2560 },
                Piece { gref: GrantRef(2), gref_offset: 2560, buf_offset: 4096, len: 1536 },
            ]
        );
        let total: usize = out.iter().map(|p| usize::from(p.len)).sum();
        assert_eq!(total, 1536 + 4096);
        assert!(
            out.iter()
                .all(|p| p.buf_offset / 4096 == (p.buf_offset + usize::from(p.len) - 1) / 4096)
        );
        // From a start inside a page: the segment is cut at that page's end.
        pieces(&[seg(3, 0, 4096)], 8192 + 1024, &mut out);
        assert_eq!(
            out,
            [
                Piece { gref: GrantRef(3), gref_offset: 0, buf_offset: 9216, len: 3072 },
                Piece { gref: GrantRef(3), gref_offset: 3072, buf_offset: 12288, len: 1024 },
            ]
        );
    }
}
