//! One connected vbd: the frontend's ring (one or several granted pages, mapped
//! consecutively), the event channel, and the serving of requests from it against the vbd's
//! region of a virtio disk.
//!
//! Each round takes at most [`MAX_REQUESTS`] requests and [`ROUND_BYTES`] of data (a discard
//! is zero-filled [`ROUND_BYTES`] at a time and answered when done), copying each slot once
//! ([`BackRing::next_request`]) and checking the copy (`request`). Data moves by grant copy
//! through the back end's one I/O buffer, so nothing of the guest's stays mapped but the
//! ring. Requests run one after the other, each finished before the next starts, which is
//! what makes the barrier and flush semantics hold: a flush-cache or barrier request with
//! data flushes the disk, writes, and flushes again before it is answered (everything
//! answered before it, and it, is then durable); one without data flushes.
//!
//! A broken ring (indices out of range), a request no honest frontend sends, a grant that
//! cannot be copied, or an event storm ends the connection with the reason for the log line.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::io::blkif::*;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::events;
use pv_guest::grant::{self, MappedRun};
use pv_guest::memory::shared;
use ring_buffers::BackRing;

use super::request::{self, Kind, Reject, Request, Segments};
use super::vbd::Region;
use crate::drivers::iobuf::{Direction, IoBuf, Segment};
use crate::drivers::virtio::blk::Disk;

/// Requests taken from one ring per round.
pub const MAX_REQUESTS: u32 = 32;
/// Bytes moved for one ring per round (reads, writes, discard zeroing).
pub const ROUND_BYTES: usize = 1 << 20;
/// Wake-ups in a second with nothing on the ring that count as an event storm.
const STORM_EVENTS: u32 = 500;

/// The back end's buffers, shared by every connection (dom0 serves one at a time).
pub struct Buffers {
    /// Data: the largest request (`MAX_INDIRECT_SEGMENTS` pages).
    pub data: IoBuf,
    /// The indirect descriptor pages of one request.
    pub indirect: IoBuf,
    pub segs: Vec<Segment>,
}

/// Where a connection's requests go.
pub struct Target<'a> {
    pub disk: &'a mut Disk,
    pub region: Region,
    pub writable: bool,
}

/// A discard being zero-filled: what is left of it.
struct Discard {
    id: u64,
    next: u64,
    left: u64,
}

/// What a round of serving came to.
#[derive(Debug)]
pub enum Served {
    /// Nothing left to do until the next event.
    Idle,
    /// Work is left (the budget ran out): come back without waiting for an event.
    More,
    /// The connection must end, for this reason.
    Broken(String),
}

/// Counters, for the log and the tests.
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub discards: u64,
    pub indirect: u64,
    pub errors: u64,
}

pub struct Conn {
    dom: DomId,
    ring: BackRing<'static, BlkifRequest, BlkifResponse>,
    run: MappedRun,
    port: EvtchnPort,
    discard: Option<Discard>,
    window_start: u64,
    idle_events: u32,
    pub stats: Stats,
}

impl Conn {
    /// Maps the ring pages `grefs` of `dom` and binds to its port `remote`; on failure,
    /// nothing is left mapped or bound.
    pub fn connect(
        dom: DomId,
        grefs: &[GrantRef],
        remote: EvtchnPort,
        now: u64,
    ) -> Result<Self, String> {
        let run = grant::map_run(dom, grefs, false)
            .map_err(|st| format!("cannot map its ring (grant status {st})"))?;
        let Some(ring) = shared::mapped_request_ring::<BlkifRequest, BlkifResponse>(&run) else {
            let _ = grant::unmap_run(run);
            return Err("ring pages do not make a ring".into());
        };
        match events::bind_interdomain(dom, remote, |_| {}) {
            Ok(port) => {
                events::on_queue(port);
                Ok(Conn {
                    dom,
                    ring: BackRing::new(ring),
                    run,
                    port,
                    discard: None,
                    window_start: now,
                    idle_events: 0,
                    stats: Stats::default(),
                })
            }
            Err(e) => {
                // `ring` (plain pointers, no Drop) is never used again.
                let _ = grant::unmap_run(run);
                Err(format!("cannot bind its event channel {}: {e:?}", remote.0))
            }
        }
    }

    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    /// Ends the connection: the event channel closed, the ring unmapped (false if the
    /// hypervisor refused the unmap).
    pub fn close(self) -> bool {
        // The ring goes with `self` here: nothing reaches the pages once they are unmapped.
        let Conn { run, port, .. } = self;
        events::off(port);
        let _ = hypercall_abi::guest::evtchn_close(port);
        grant::unmap_run(run).is_ok()
    }

    /// One round: requests within budget, responses pushed, the frontend told.
    pub fn serve(&mut self, fired: bool, now: u64, t: &mut Target<'_>, b: &mut Buffers) -> Served {
        let mut bytes = 0usize;
        let mut taken = 0u32;
        let mut result = Served::Idle;
        'work: {
            if let Some(r) = self.continue_discard(t, b, &mut bytes) {
                result = r;
                break 'work;
            }
            while taken < MAX_REQUESTS && bytes < ROUND_BYTES && self.discard.is_none() {
                let slot = match self.ring.next_request() {
                    Ok(Some(s)) => s,
                    Ok(None) => break,
                    Err(e) => {
                        result = Served::Broken(format!("ring indices out of range ({e:?})"));
                        break 'work;
                    }
                };
                taken += 1;
                match self.handle(&slot, t, b, &mut bytes) {
                    Ok(Some((id, op, status))) => self.answer(id, op, status),
                    Ok(None) => {}
                    Err(why) => {
                        result = Served::Broken(why);
                        break 'work;
                    }
                }
                if let Some(r) = self.continue_discard(t, b, &mut bytes) {
                    result = r;
                    break 'work;
                }
            }
            if self.discard.is_some() || taken == MAX_REQUESTS || bytes >= ROUND_BYTES {
                result = Served::More;
            } else {
                // Out of requests: arm req_event so the frontend notifies the next one, and
                // look once more (it may have pushed one in between).
                match self.ring.final_check_for_requests() {
                    Ok(true) => result = Served::More,
                    Ok(false) => {}
                    Err(e) => result = Served::Broken(format!("ring indices out of range ({e:?})")),
                }
            }
        }
        if self.ring.push_responses().is_yes() {
            let _ = events::send(self.port);
        }
        // Storm: the frontend's event fired with nothing on the ring, again and again.
        if now.saturating_sub(self.window_start) > 1_000_000_000 {
            self.window_start = now;
            self.idle_events = 0;
        }
        if fired && taken == 0 && self.discard.is_none() {
            self.idle_events += 1;
            if self.idle_events > STORM_EVENTS {
                return Served::Broken(format!(
                    "event storm ({} events in under a second, no requests)",
                    self.idle_events
                ));
            }
        }
        result
    }

    fn answer(&mut self, id: u64, operation: u8, status: i16) {
        if status != BLKIF_RSP_OKAY {
            self.stats.errors += 1;
        }
        // A response for every request taken: there is always a slot (ours).
        let _ =
            self.ring.stage_response(BlkifResponse { id, operation, status, ..Default::default() });
    }

    /// Carries out one request's copy; Ok(Some(response)) when it is done, Ok(None) when a
    /// discard goes on in later rounds, Err(reason) when the frontend is hostile.
    fn handle(
        &mut self,
        slot: &BlkifRequest,
        t: &mut Target<'_>,
        b: &mut Buffers,
        bytes: &mut usize,
    ) -> Result<Option<(u64, u8, i16)>, String> {
        let req = match request::parse(slot, t.writable) {
            Ok(r) => r,
            Err(Reject::Answer { id, operation, status }) => {
                return Ok(Some((id, operation, status)));
            }
            Err(Reject::Hostile(why)) => return Err(why),
        };
        let status = match req.kind {
            Kind::Flush => {
                self.stats.flushes += 1;
                status_of(t.disk.flush())
            }
            Kind::Discard => {
                let first = request::check_range(&t.region, req.sector, req.discard_sectors)
                    .map_err(hostile)?;
                self.stats.discards += 1;
                self.discard = Some(Discard { id: req.id, next: first, left: req.discard_sectors });
                return Ok(None);
            }
            Kind::Read | Kind::Write { .. } => self.read_write(&req, t, b, bytes)?,
        };
        Ok(Some((req.id, req.operation, status)))
    }

    fn read_write(
        &mut self,
        req: &Request,
        t: &mut Target<'_>,
        b: &mut Buffers,
        bytes: &mut usize,
    ) -> Result<i16, String> {
        let descs = match &req.segments {
            Segments::Direct(s) => s.clone(),
            Segments::Indirect { pages, count } => {
                self.stats.indirect += 1;
                let whole: Vec<Segment> =
                    pages.iter().map(|&gref| Segment { gref, offset: 0, len: 4096 }).collect();
                b.indirect
                    .copy(self.dom, &whole, Direction::FromGuest)
                    .map_err(|st| format!("cannot copy its indirect pages (grant status {st})"))?;
                request::indirect_segments(b.indirect.bytes(whole.len() * 4096), *count)
            }
            Segments::None => Vec::new(),
        };
        let n = request::check_segments(&descs, &mut b.segs).map_err(hostile)?;
        let first = request::check_range(&t.region, req.sector, n).map_err(hostile)?;
        let len = (n * 512) as usize;
        *bytes += len;
        let bad_grant = |st| format!("cannot copy its data pages (grant status {st})");
        Ok(match req.kind {
            Kind::Read => {
                self.stats.reads += 1;
                if t.disk.read(first, b.data.bytes_mut(len)).is_err() {
                    return Ok(BLKIF_RSP_ERROR);
                }
                b.data.copy(self.dom, &b.segs, Direction::ToGuest).map_err(bad_grant)?;
                BLKIF_RSP_OKAY
            }
            Kind::Write { flush } => {
                self.stats.writes += 1;
                b.data.copy(self.dom, &b.segs, Direction::FromGuest).map_err(bad_grant)?;
                // Barrier and flush-with-data: what was answered before is made durable
                // first, then this write, before the answer.
                if flush && t.disk.flush().is_err() {
                    return Ok(BLKIF_RSP_ERROR);
                }
                let ok = t.disk.write(first, b.data.bytes(len)).is_ok()
                    && (!flush || t.disk.flush().is_ok());
                if ok { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR }
            }
            _ => BLKIF_RSP_ERROR,
        })
    }

    /// Zero-fills the discard in progress within the round's budget; answers it when done.
    /// Some(result) only if the round must end here.
    fn continue_discard(
        &mut self,
        t: &mut Target<'_>,
        b: &mut Buffers,
        bytes: &mut usize,
    ) -> Option<Served> {
        let chunk_sectors = (b.data.len() / 512) as u64;
        let mut zeroed = false;
        while let Some(d) = self.discard.as_mut() {
            if d.left == 0 {
                let id = d.id;
                self.discard = None;
                self.answer(id, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY);
                return None;
            }
            if *bytes >= ROUND_BYTES {
                return Some(Served::More);
            }
            if !zeroed {
                b.data.bytes_mut(usize::MAX).fill(0);
                zeroed = true;
            }
            let n = d.left.min(chunk_sectors);
            if t.disk.write(d.next, b.data.bytes((n * 512) as usize)).is_err() {
                let id = d.id;
                self.discard = None;
                self.answer(id, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR);
                return None;
            }
            d.next += n;
            d.left -= n;
            *bytes += (n * 512) as usize;
        }
        None
    }
}

fn hostile(r: Reject) -> String {
    match r {
        Reject::Hostile(why) => why,
        Reject::Answer { status, .. } => format!("request refused ({status})"),
    }
}

fn status_of<E>(r: Result<(), E>) -> i16 {
    if r.is_ok() { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR }
}
