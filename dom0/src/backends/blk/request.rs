//! One blkif request, from the copy blkback took of its ring slot to what it will do: the
//! operation, where on the vbd, and the segments of guest memory it moves. Every field the
//! frontend wrote is a claim checked here, once, on the copy (it cannot change under us):
//! the operation, the segment count against the protocol's and our advertised limits, each
//! segment within its page (`first_sect <= last_sect <= 7`), the sector range within the vbd.
//! Hardware-free and host-tested.
//!
//! What a check finds decides what happens: a request this back end does not do is answered
//! `BLKIF_RSP_EOPNOTSUPP`, a write to a read-only vbd `BLKIF_RSP_ERROR` (an honest frontend
//! may try either); anything no honest frontend sends (segments past a page, too many
//! segments, sectors past the vbd) is [`Reject::Hostile`], and the device is closed.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::GrantRef;
use hypercall_abi::io::blkif::*;
use zerocopy::{FromBytes, IntoBytes};

use super::vbd::Region;
use crate::drivers::iobuf::Segment;

/// Indirect segments this back end takes in one request (`feature-max-indirect-segments`):
/// 256 KiB, what its I/O buffer holds.
pub const MAX_INDIRECT_SEGMENTS: usize = 64;
/// Indirect pages that many segments need.
pub const MAX_INDIRECT_PAGES: usize =
    MAX_INDIRECT_SEGMENTS.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    /// A write; `flush`: a flush-cache or barrier request with data, which must be durable
    /// together with everything completed before it when it is answered.
    Write {
        flush: bool,
    },
    /// A flush-cache or barrier request without data.
    Flush,
    Discard,
}

/// Where the request's segment descriptors are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segments {
    None,
    /// In the slot itself.
    Direct(Vec<BlkifRequestSegment>),
    /// In `pages` granted pages, `count` of them in all.
    Indirect {
        pages: Vec<GrantRef>,
        count: usize,
    },
}

/// A request that passed the checks that need only its slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    /// The operation the response carries (an indirect request's inner one, as Xen's
    /// blkback answers).
    pub operation: u8,
    pub kind: Kind,
    pub sector: u64,
    /// Sectors to discard (discard only; reads and writes count theirs from the segments).
    pub discard_sectors: u64,
    pub segments: Segments,
}

/// Why a request is not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Answer it with this status (`BLKIF_RSP_EOPNOTSUPP` or `BLKIF_RSP_ERROR`).
    Answer { id: u64, operation: u8, status: i16 },
    /// No honest frontend sends this: close the device, with this reason.
    Hostile(String),
}

/// Checks a slot's copy (read as the request union: plain, discard or indirect).
pub fn parse(slot: &BlkifRequest, writable: bool) -> Result<Request, Reject> {
    let bytes = slot.as_bytes();
    let answer = |status| Reject::Answer { id: slot.id, operation: slot.operation, status };
    let plain = |kind: Kind| {
        let n = usize::from(slot.nr_segments);
        if n > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            return Err(Reject::Hostile(format!("request with {n} segments")));
        }
        if n == 0 && !matches!(kind, Kind::Flush | Kind::Write { flush: true }) {
            return Err(Reject::Hostile("read or write without segments".into()));
        }
        let kind = match kind {
            Kind::Write { flush: true } if n == 0 => Kind::Flush,
            k => k,
        };
        Ok(Request {
            id: slot.id,
            operation: slot.operation,
            kind,
            sector: slot.sector_number,
            discard_sectors: 0,
            segments: if n == 0 {
                Segments::None
            } else {
                Segments::Direct(slot.seg[..n].to_vec())
            },
        })
    };
    match slot.operation {
        BLKIF_OP_READ => plain(Kind::Read),
        BLKIF_OP_WRITE if !writable => Err(answer(BLKIF_RSP_ERROR)),
        BLKIF_OP_WRITE => plain(Kind::Write { flush: false }),
        BLKIF_OP_WRITE_BARRIER | BLKIF_OP_FLUSH_DISKCACHE if !writable && slot.nr_segments > 0 => {
            Err(answer(BLKIF_RSP_ERROR))
        }
        BLKIF_OP_WRITE_BARRIER | BLKIF_OP_FLUSH_DISKCACHE => plain(Kind::Write { flush: true }),
        BLKIF_OP_DISCARD => {
            let d = BlkifRequestDiscard::read_from_prefix(bytes)
                .map_err(|_| answer(BLKIF_RSP_ERROR))?
                .0;
            if !writable {
                return Err(answer(BLKIF_RSP_ERROR));
            }
            Ok(Request {
                id: d.id,
                operation: d.operation,
                kind: Kind::Discard,
                sector: d.sector_number,
                discard_sectors: d.nr_sectors,
                segments: Segments::None,
            })
        }
        BLKIF_OP_INDIRECT => {
            let r = BlkifRequestIndirect::read_from_prefix(bytes)
                .map_err(|_| answer(BLKIF_RSP_ERROR))?
                .0;
            let kind = match r.indirect_op {
                BLKIF_OP_READ => Kind::Read,
                BLKIF_OP_WRITE if writable => Kind::Write { flush: false },
                op => {
                    return Err(Reject::Answer {
                        id: r.id,
                        operation: op,
                        status: BLKIF_RSP_ERROR,
                    });
                }
            };
            let count = usize::from(r.nr_segments);
            if count == 0 || count > MAX_INDIRECT_SEGMENTS {
                return Err(Reject::Hostile(format!(
                    "indirect request with {count} segments (at most {MAX_INDIRECT_SEGMENTS})"
                )));
            }
            let npages = count.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
            Ok(Request {
                id: r.id,
                operation: r.indirect_op,
                kind,
                sector: r.sector_number,
                discard_sectors: 0,
                segments: Segments::Indirect { pages: r.indirect_grefs[..npages].to_vec(), count },
            })
        }
        op => Err(Reject::Answer { id: slot.id, operation: op, status: BLKIF_RSP_EOPNOTSUPP }),
    }
}

/// The segment descriptors of an indirect page's copy (`count` of them from its start).
pub fn indirect_segments(page: &[u8], count: usize) -> Vec<BlkifRequestSegment> {
    page.chunks_exact(8)
        .take(count)
        .filter_map(|c| BlkifRequestSegment::read_from_bytes(c).ok())
        .collect()
}

/// Checks each segment lies within its page, and turns them into the byte stretches to copy;
/// returns the request's total in sectors.
pub fn check_segments(segs: &[BlkifRequestSegment], out: &mut Vec<Segment>) -> Result<u64, Reject> {
    out.clear();
    let mut total = 0u64;
    for (i, s) in segs.iter().enumerate() {
        if s.first_sect > s.last_sect || s.last_sect > BLKIF_MAX_SECT_IN_PAGE {
            return Err(Reject::Hostile(format!(
                "segment {i} runs past its page (sectors {}..={})",
                s.first_sect, s.last_sect
            )));
        }
        let n = u16::from(s.last_sect - s.first_sect + 1);
        out.push(Segment { gref: s.gref, offset: u16::from(s.first_sect) * 512, len: n * 512 });
        total += u64::from(n);
    }
    Ok(total)
}

/// The disk sector `n` sectors from vbd sector `sector` start at, if they lie in the vbd.
pub fn check_range(region: &Region, sector: u64, n: u64) -> Result<u64, Reject> {
    region.translate(sector, n).ok_or_else(|| {
        Reject::Hostile(format!(
            "sectors {sector}+{n} past the end of the vbd ({} sectors)",
            region.sectors
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(gref: u32, first: u8, last: u8) -> BlkifRequestSegment {
        BlkifRequestSegment { gref: GrantRef(gref), first_sect: first, last_sect: last, _pad: 0 }
    }

    fn rw(op: u8, n: u8) -> BlkifRequest {
        let mut r = BlkifRequest {
            operation: op,
            nr_segments: n,
            id: 7,
            sector_number: 8,
            ..Default::default()
        };
        for i in 0..usize::from(n).min(11) {
            r.seg[i] = seg(100 + i as u32, 0, 7);
        }
        r
    }

    fn hostile(r: Result<Request, Reject>) -> bool {
        matches!(r, Err(Reject::Hostile(_)))
    }

    #[test]
    fn reads_and_writes() {
        let r = parse(&rw(BLKIF_OP_READ, 3), true).unwrap();
        assert_eq!((r.kind, r.id, r.sector, r.operation), (Kind::Read, 7, 8, BLKIF_OP_READ));
        assert!(matches!(r.segments, Segments::Direct(ref s) if s.len() == 3));
        assert_eq!(
            parse(&rw(BLKIF_OP_WRITE, 11), true).unwrap().kind,
            Kind::Write { flush: false }
        );
    }

    #[test]
    fn segment_counts() {
        assert!(hostile(parse(&rw(BLKIF_OP_READ, 0), true)));
        assert!(hostile(parse(&rw(BLKIF_OP_WRITE, 12), true)));
        assert!(hostile(parse(&rw(BLKIF_OP_READ, 255), true)));
    }

    #[test]
    fn flushes_and_barriers() {
        assert_eq!(parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0), true).unwrap().kind, Kind::Flush);
        assert_eq!(parse(&rw(BLKIF_OP_WRITE_BARRIER, 0), true).unwrap().kind, Kind::Flush);
        assert_eq!(
            parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 2), true).unwrap().kind,
            Kind::Write { flush: true }
        );
        assert_eq!(
            parse(&rw(BLKIF_OP_WRITE_BARRIER, 1), true).unwrap().kind,
            Kind::Write { flush: true }
        );
        // A flush of a read-only vbd is harmless; data is not.
        assert_eq!(parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0), false).unwrap().kind, Kind::Flush);
        assert!(matches!(
            parse(&rw(BLKIF_OP_WRITE_BARRIER, 1), false),
            Err(Reject::Answer { status: BLKIF_RSP_ERROR, .. })
        ));
    }

    #[test]
    fn read_only_and_unknown() {
        assert_eq!(
            parse(&rw(BLKIF_OP_WRITE, 1), false),
            Err(Reject::Answer { id: 7, operation: BLKIF_OP_WRITE, status: BLKIF_RSP_ERROR })
        );
        assert_eq!(parse(&rw(BLKIF_OP_READ, 1), false).unwrap().kind, Kind::Read);
        for op in [BLKIF_OP_RESERVED_1, 7, 200] {
            assert_eq!(
                parse(&rw(op, 1), true),
                Err(Reject::Answer { id: 7, operation: op, status: BLKIF_RSP_EOPNOTSUPP })
            );
        }
    }

    #[test]
    fn discard() {
        let d = BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            id: 9,
            sector_number: 16,
            nr_sectors: 64,
            ..Default::default()
        };
        let mut slot = BlkifRequest::default();
        slot.as_mut_bytes()[..32].copy_from_slice(d.as_bytes());
        let r = parse(&slot, true).unwrap();
        assert_eq!((r.kind, r.id, r.sector, r.discard_sectors), (Kind::Discard, 9, 16, 64));
        assert!(matches!(parse(&slot, false), Err(Reject::Answer { status: BLKIF_RSP_ERROR, .. })));
    }

    fn indirect(op: u8, n: u16) -> BlkifRequest {
        let mut i = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: op,
            nr_segments: n,
            id: 5,
            sector_number: 0,
            ..Default::default()
        };
        i.indirect_grefs[0] = GrantRef(40);
        i.indirect_grefs[1] = GrantRef(41);
        let mut slot = BlkifRequest::default();
        slot.as_mut_bytes()[..64].copy_from_slice(i.as_bytes());
        slot
    }

    #[test]
    fn indirect_requests() {
        let r = parse(&indirect(BLKIF_OP_WRITE, 64), true).unwrap();
        assert_eq!((r.kind, r.operation, r.id), (Kind::Write { flush: false }, BLKIF_OP_WRITE, 5));
        assert_eq!(r.segments, Segments::Indirect { pages: vec![GrantRef(40)], count: 64 });
        assert!(hostile(parse(&indirect(BLKIF_OP_READ, 0), true)));
        assert!(hostile(parse(&indirect(BLKIF_OP_READ, 65), true)));
        assert!(matches!(
            parse(&indirect(BLKIF_OP_DISCARD, 8), true),
            Err(Reject::Answer { status: BLKIF_RSP_ERROR, .. })
        ));
        let mut page = vec![0u8; 4096];
        page[..8].copy_from_slice(seg(3, 1, 2).as_bytes());
        page[8..16].copy_from_slice(seg(4, 0, 7).as_bytes());
        assert_eq!(indirect_segments(&page, 2), [seg(3, 1, 2), seg(4, 0, 7)]);
    }

    #[test]
    fn segments_within_their_pages() {
        let mut out = Vec::new();
        assert_eq!(check_segments(&[seg(1, 0, 7), seg(2, 3, 3)], &mut out), Ok(9));
        assert_eq!(out[1], Segment { gref: GrantRef(2), offset: 1536, len: 512 });
        assert!(matches!(check_segments(&[seg(1, 0, 8)], &mut out), Err(Reject::Hostile(_))));
        assert!(matches!(check_segments(&[seg(1, 5, 4)], &mut out), Err(Reject::Hostile(_))));
        assert!(matches!(check_segments(&[seg(1, 0, 255)], &mut out), Err(Reject::Hostile(_))));
    }

    #[test]
    fn ranges() {
        let r = Region { start: 2048, sectors: 100 };
        assert_eq!(check_range(&r, 0, 100), Ok(2048));
        assert!(matches!(check_range(&r, 96, 8), Err(Reject::Hostile(_))));
        assert!(matches!(check_range(&r, u64::MAX - 2, 8), Err(Reject::Hostile(_))));
    }
}
