//! One connected vbd: the frontend's ring (one or several granted pages, mapped
//! consecutively), the event channel, and the serving of requests from it against the vbd's
//! region of a virtio disk.
//!
//! Each round takes at most [`MAX_REQUESTS`] requests and [`ROUND_BYTES`] of data (a discard
//! is zero-filled [`ROUND_BYTES`] at a time and answered when done), copying each slot once
//! ([`BackRing::next_request`]) and checking the copy (`request`). Data moves by grant copy
//! through the back end's one I/O buffer, so nothing of the guest's stays mapped but the
//! ring. Plain reads and writes are gathered into batches of up to `BATCH_MAX`, each with
//! its stretch of the buffer, and given to the disk all in flight at once (the device may
//! complete them in any order, as blkif allows: a frontend orders with flushes and barriers).
//! A flush-cache, barrier or discard request first completes the batch gathered before it,
//! then runs alone, which is what makes their semantics hold: a flush-cache or barrier
//! request with data flushes the disk, writes, and flushes again before it is answered
//! (everything answered before it, and it, is then durable); one without data flushes.
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
use crate::drivers::virtio::blk::{BATCH_MAX, BatchOp, Disk};

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

/// A read or write gathered into the batch, its data at `offset` in the I/O buffer.
struct Gathered {
    id: u64,
    operation: u8,
    write: bool,
    first: u64,
    offset: usize,
    len: usize,
    segs: Vec<Segment>,
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
    /// Time spent carrying requests out (copies and disk), in ns.
    pub busy_ns: u64,
    /// Of which grant copies, in ns.
    pub copy_ns: u64,
}

impl Stats {
    /// Adds another connection's counters (a vbd's totals over its connections).
    pub fn add(&mut self, o: &Stats) {
        self.reads += o.reads;
        self.writes += o.writes;
        self.flushes += o.flushes;
        self.discards += o.discards;
        self.indirect += o.indirect;
        self.errors += o.errors;
        self.busy_ns += o.busy_ns;
        self.copy_ns += o.copy_ns;
    }
}

pub struct Conn {
    dom: DomId,
    ring: BackRing<'static, BlkifRequest, BlkifResponse>,
    run: MappedRun,
    port: EvtchnPort,
    discard: Option<Discard>,
    batch: Vec<Gathered>,
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
                    batch: Vec::new(),
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
                let t0 = pv_guest::time::now_ns();
                let handled = self.handle(&slot, t, b, &mut bytes);
                self.stats.busy_ns += pv_guest::time::now_ns() - t0;
                match handled {
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
            let t0 = pv_guest::time::now_ns();
            let ran = self.run_batch(t, b);
            self.stats.busy_ns += pv_guest::time::now_ns() - t0;
            if let Err(why) = ran {
                result = Served::Broken(why);
                break 'work;
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
        if matches!(req.kind, Kind::Read | Kind::Write { flush: false }) {
            self.gather(&req, t, b, bytes)?;
            return Ok(None);
        }
        // Everything else runs alone, after what was gathered before it.
        self.run_batch(t, b)?;
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
            Kind::Write { .. } => self.flush_write(&req, t, b, bytes)?,
            Kind::Read => BLKIF_RSP_ERROR,
        };
        Ok(Some((req.id, req.operation, status)))
    }

    /// The checked segments of `req` (copying its indirect pages in first), in `b.segs`; its
    /// first disk sector and length in bytes.
    fn segments(
        &mut self,
        req: &Request,
        t: &Target<'_>,
        b: &mut Buffers,
    ) -> Result<(u64, usize), String> {
        let descs = match &req.segments {
            Segments::Direct(s) => s.clone(),
            Segments::Indirect { pages, count } => {
                self.stats.indirect += 1;
                let whole: Vec<Segment> =
                    pages.iter().map(|&gref| Segment { gref, offset: 0, len: 4096 }).collect();
                b.indirect
                    .copy(self.dom, &whole, Direction::FromGuest)
                    .map_err(|st| format!("cannot reach its indirect pages (grant status {st})"))?;
                request::indirect_segments(b.indirect.bytes(whole.len() * 4096), *count)
            }
            Segments::None => Vec::new(),
        };
        let n = request::check_segments(&descs, &mut b.segs).map_err(hostile)?;
        let first = request::check_range(&t.region, req.sector, n).map_err(hostile)?;
        Ok((first, (n * 512) as usize))
    }

    /// Checks a plain read or write and adds it to the batch (a write's data copied in now),
    /// running the batch first if it is full or the buffer has no room left.
    fn gather(
        &mut self,
        req: &Request,
        t: &mut Target<'_>,
        b: &mut Buffers,
        bytes: &mut usize,
    ) -> Result<(), String> {
        let (first, len) = self.segments(req, t, b)?;
        let mut offset = self.batch.last().map_or(0, |g| g.offset + g.len);
        if self.batch.len() == BATCH_MAX || offset + len > b.data.len() {
            self.run_batch(t, b)?;
            offset = 0;
        }
        let write = matches!(req.kind, Kind::Write { .. });
        if write {
            let t0 = pv_guest::time::now_ns();
            b.data.copy_at(self.dom, &b.segs, Direction::FromGuest, offset).map_err(bad_grant)?;
            self.stats.copy_ns += pv_guest::time::now_ns() - t0;
        }
        *bytes += len;
        self.batch.push(Gathered {
            id: req.id,
            operation: req.operation,
            write,
            first,
            offset,
            len,
            segs: b.segs.clone(),
        });
        Ok(())
    }

    /// Gives the gathered reads and writes to the disk, all in flight, then copies what was
    /// read out to the guest and answers each.
    fn run_batch(&mut self, t: &mut Target<'_>, b: &mut Buffers) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = core::mem::take(&mut self.batch);
        let end = batch.last().map_or(0, |g| g.offset + g.len);
        let results = {
            let mut rest = b.data.bytes_mut(end);
            let mut at = 0;
            let mut ops = Vec::with_capacity(batch.len());
            for g in &batch {
                let (_, tail) = core::mem::take(&mut rest).split_at_mut(g.offset - at);
                let (mine, tail) = tail.split_at_mut(g.len);
                rest = tail;
                at = g.offset + g.len;
                ops.push(if g.write {
                    BatchOp::Write(g.first, mine)
                } else {
                    BatchOp::Read(g.first, mine)
                });
            }
            t.disk.run_batch(&mut ops)
        };
        let mut broken = None;
        for (g, r) in batch.iter().zip(results) {
            let mut status = if r.is_ok() { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR };
            if g.write {
                self.stats.writes += 1;
            } else {
                self.stats.reads += 1;
                if broken.is_some() {
                    status = BLKIF_RSP_ERROR;
                } else if r.is_ok() {
                    let c0 = pv_guest::time::now_ns();
                    let copied = b.data.copy_at(self.dom, &g.segs, Direction::ToGuest, g.offset);
                    self.stats.copy_ns += pv_guest::time::now_ns() - c0;
                    if let Err(st) = copied {
                        broken = Some(bad_grant(st));
                        status = BLKIF_RSP_ERROR;
                    }
                }
            }
            self.answer(g.id, g.operation, status);
        }
        broken.map_or(Ok(()), Err)
    }

    /// A flush-cache or barrier request with data, alone: flush, write, flush.
    fn flush_write(
        &mut self,
        req: &Request,
        t: &mut Target<'_>,
        b: &mut Buffers,
        bytes: &mut usize,
    ) -> Result<i16, String> {
        let (first, len) = self.segments(req, t, b)?;
        *bytes += len;
        self.stats.writes += 1;
        let t0 = pv_guest::time::now_ns();
        b.data.copy(self.dom, &b.segs, Direction::FromGuest).map_err(bad_grant)?;
        self.stats.copy_ns += pv_guest::time::now_ns() - t0;
        // What was answered before is made durable first, then this write, before the answer.
        if t.disk.flush().is_err() {
            return Ok(BLKIF_RSP_ERROR);
        }
        let ok = t.disk.write(first, b.data.bytes(len)).is_ok() && t.disk.flush().is_ok();
        Ok(if ok { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR })
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

fn bad_grant(status: i16) -> String {
    format!("cannot reach its data pages (grant status {status})")
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
