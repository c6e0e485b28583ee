//! One vif's data path: the back end of a frontend's transmit and receive rings (`io/netif.h`),
//! hardware-free and generic over the ring memory and the grant copies, so the host tests run
//! it against a frontend in the same process.
//!
//! Transmit: each packet's slots (first request, its extra-info slots, then the
//! `NETTXF_more_data` chain) are copied out of the ring once, validated (slot count, offsets
//! and sizes within a page, the size sum), the data of a round's packets grant-copied into
//! dom0's frames in one batch, a blank checksum filled (`csum`), and one response staged per
//! slot (`NETIF_RSP_NULL` for extras). Receive: frames queued for the vif (at most
//! [`RXQ_MAX`]) are grant-copied, a batch at a time, into the pages the frontend offered in
//! its receive requests (`feature-rx-copy`), one slot each, with `NETRXF_data_validated` when
//! dom0 made the checksum itself.
//!
//! What a frontend does wrong is split in two, as Linux's netback splits it: a packet dom0
//! will not carry (too big, too small, an offload it did not offer) is answered
//! `NETIF_RSP_ERROR` and dropped; a broken protocol (indices past the ring, a slot past its
//! page, a chain longer than [`MAX_SLOTS`] or past what was published, a grant that does not
//! copy, an unknown extra type) is [`Fatal`]: the caller disconnects the vif. Work per call is
//! bounded by the budgets the caller passes.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use hypercall_abi::GrantRef;
use hypercall_abi::io::netif::*;
use ring_buffers::{BackRing, Notify, RingError, RingMemory, SharedMem};
use zerocopy::{FromBytes, IntoBytes};

use super::csum;
pub use crate::drivers::iobuf::Segment;

/// Largest frame a vif carries: an Ethernet frame of a 1500-byte MTU with a VLAN tag (no GSO
/// is offered, so nothing bigger comes).
pub const MAX_FRAME: usize = 1518;
/// Smallest: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Most data slots one transmitted packet may use (`XEN_NETIF_NR_SLOTS_MIN`).
pub const MAX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN as usize;
/// Most extra-info slots after a first request (one per extra type).
pub const MAX_EXTRAS: usize = 4;
/// Frames waiting for a vif's receive requests; past this, new ones are dropped.
pub const RXQ_MAX: usize = 256;
const PAGE: usize = 4096;

/// A frame on its way through dom0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    /// dom0 made its L4 checksum (so the receiver need not check it).
    pub csum_filled: bool,
}

/// Copies between dom0 and a frontend's granted pages, a batch at a time (one hypercall for
/// a round's packets rather than one per slot).
pub trait GrantIo {
    /// Bytes one batch may move.
    fn capacity(&self) -> usize;
    /// Fills `dst` with `segs` of the frontend's grants laid end to end (their lengths sum to
    /// `dst.len()`); if a copy is refused, which grant and its `GNTST_*` status.
    fn copy_in(&mut self, segs: &[Segment], dst: &mut [u8]) -> Result<(), (GrantRef, i16)>;
    /// Writes `src`, cut end to end into `segs`, into the frontend's grants.
    fn copy_out(&mut self, segs: &[Segment], src: &[u8]) -> Result<(), (GrantRef, i16)>;
}

/// A broken protocol: the vif is disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fatal {
    /// A ring's indices are impossible.
    Ring(RingError),
    /// A grant copy was refused.
    BadGrant { gref: u32, status: i16 },
    /// A transmit slot runs past its page.
    SlotPastPage { offset: u16, size: u16 },
    /// A packet with more slots than allowed.
    TooManySlots,
    /// A packet's slots run past the requests published.
    Truncated,
    /// An extra-info slot of an unknown type.
    BadExtra(u8),
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Ring(e) => write!(f, "ring indices out of range ({e:?})"),
            Fatal::BadGrant { gref, status } => write!(f, "grant ref {gref} refused ({status})"),
            Fatal::SlotPastPage { offset, size } => {
                write!(f, "slot of {size} bytes at offset {offset} runs past its page")
            }
            Fatal::TooManySlots => write!(f, "packet of more than {MAX_SLOTS} slots"),
            Fatal::Truncated => write!(f, "packet runs past the requests published"),
            Fatal::BadExtra(t) => write!(f, "extra-info slot of unknown type {t}"),
        }
    }
}

impl From<RingError> for Fatal {
    fn from(e: RingError) -> Self {
        Fatal::Ring(e)
    }
}

/// Counters of one vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
}

/// One vif's rings and receive queue.
pub struct VifRings<'a, M: RingMemory = SharedMem<'a>> {
    tx: BackRing<'a, NetifTxRequest, NetifTxResponse, M>,
    rx: BackRing<'a, NetifRxRequest, NetifRxResponse, M>,
    rxq: VecDeque<Frame>,
    pub stats: VifStats,
}

/// A packet's slots, as copied out of the ring.
struct Slots {
    data: Vec<NetifTxRequest>,
    extras: Vec<NetifExtraInfo>,
}

impl<'a, M: RingMemory> VifRings<'a, M> {
    pub fn new(
        tx: BackRing<'a, NetifTxRequest, NetifTxResponse, M>,
        rx: BackRing<'a, NetifRxRequest, NetifRxResponse, M>,
    ) -> Self {
        VifRings { tx, rx, rxq: VecDeque::new(), stats: VifStats::default() }
    }

    /// Queues a frame for the frontend (dropped if the queue is full: a frontend that posts
    /// no receive requests cannot make dom0 hold more than [`RXQ_MAX`] frames).
    pub fn queue_rx(&mut self, f: Frame) {
        if self.rxq.len() >= RXQ_MAX || f.data.len() > PAGE {
            self.stats.rx_dropped += 1;
        } else {
            self.rxq.push_back(f);
        }
    }

    /// Frames waiting for receive requests.
    pub fn rx_queued(&self) -> usize {
        self.rxq.len()
    }

    /// Copies one packet's slots out of the transmit ring (`first` already taken).
    fn take_slots(&mut self, first: NetifTxRequest) -> Result<Slots, Fatal> {
        let mut s = Slots { data: alloc::vec![first], extras: Vec::new() };
        let mut more_extra = first.flags & NETTXF_EXTRA_INFO != 0;
        while more_extra {
            if s.extras.len() >= MAX_EXTRAS {
                return Err(Fatal::TooManySlots);
            }
            let slot = self.tx.next_request()?.ok_or(Fatal::Truncated)?;
            let e = NetifExtraInfo::read_from_bytes(&slot.as_bytes()[..8])
                .map_err(|_| Fatal::Truncated)?;
            more_extra = e.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
            s.extras.push(e);
        }
        let mut more = first.flags & NETTXF_MORE_DATA != 0;
        while more {
            if s.data.len() >= MAX_SLOTS {
                return Err(Fatal::TooManySlots);
            }
            let r = self.tx.next_request()?.ok_or(Fatal::Truncated)?;
            more = r.flags & NETTXF_MORE_DATA != 0;
            s.data.push(r);
        }
        Ok(s)
    }

    /// Checks `s` and says whether dom0 carries it (`Ok(false)`: answered as an error),
    /// appending its data's segments to `segs` if so.
    fn check(s: &Slots, segs: &mut Vec<Segment>) -> Result<bool, Fatal> {
        let first = s.data[0];
        let total = usize::from(first.size);
        // The first slot's size is the packet's; its own share is what the others leave.
        let rest: usize = s.data[1..].iter().map(|r| usize::from(r.size)).sum();
        let len_of = |i: usize, r: &NetifTxRequest| {
            if i == 0 { total.saturating_sub(rest) } else { usize::from(r.size) }
        };
        for (i, r) in s.data.iter().enumerate() {
            if usize::from(r.offset) + len_of(i, r) > PAGE {
                return Err(Fatal::SlotPastPage { offset: r.offset, size: len_of(i, r) as u16 });
            }
        }
        let mut ok = (MIN_FRAME..=MAX_FRAME).contains(&total) && rest <= total;
        for e in &s.extras {
            match e.kind {
                XEN_NETIF_EXTRA_TYPE_MCAST_ADD
                | XEN_NETIF_EXTRA_TYPE_MCAST_DEL
                | XEN_NETIF_EXTRA_TYPE_HASH => {}
                // Segmentation offload was not offered: such a packet is not carried.
                XEN_NETIF_EXTRA_TYPE_GSO => ok = false,
                t => return Err(Fatal::BadExtra(t)),
            }
        }
        if ok {
            for (i, r) in s.data.iter().enumerate() {
                segs.push(Segment { gref: r.gref, offset: r.offset, len: len_of(i, r) as u16 });
            }
        }
        Ok(ok)
    }

    /// The frame a carried packet's `data` makes: its blank checksum filled, or `None` if it
    /// cannot be (answered as an error).
    fn frame(first: &NetifTxRequest, data: &[u8]) -> Option<Frame> {
        let mut f = Frame { data: data.to_vec(), csum_filled: false };
        if first.flags & NETTXF_CSUM_BLANK != 0 {
            csum::fill(&mut f.data).ok()?;
            f.csum_filled = true;
        }
        Some(f)
    }

    /// Takes up to `budget` transmitted packets (as many as one batch of copies holds),
    /// appending the frames to `out`; whether the frontend must be told of the responses.
    pub fn transmit(
        &mut self,
        io: &mut impl GrantIo,
        budget: usize,
        out: &mut Vec<Frame>,
    ) -> Result<Notify, Fatal> {
        // Every packet's slots first, copied out of the ring once and checked...
        let mut batch: Vec<(Slots, bool)> = Vec::new();
        let mut segs = Vec::new();
        let mut bytes = 0;
        while batch.len() < budget && bytes + MAX_FRAME <= io.capacity() {
            let first = match self.tx.next_request()? {
                Some(r) => r,
                None if self.tx.final_check_for_requests()? => continue,
                None => break,
            };
            let slots = self.take_slots(first)?;
            let carried = Self::check(&slots, &mut segs)?;
            if carried {
                bytes += usize::from(first.size);
            }
            batch.push((slots, carried));
        }
        if batch.is_empty() {
            return Ok(Notify::No);
        }
        // ...then the data of all of them in one batch of grant copies...
        let mut data = alloc::vec![0u8; bytes];
        if !segs.is_empty() {
            io.copy_in(&segs, &mut data)
                .map_err(|(gref, status)| Fatal::BadGrant { gref: gref.0, status })?;
        }
        // ...then each frame, and a response per slot.
        let mut at = 0;
        for (slots, carried) in batch {
            let first = slots.data[0];
            let frame = if carried {
                let end = at + usize::from(first.size);
                let f = Self::frame(&first, &data[at..end]);
                at = end;
                f
            } else {
                None
            };
            let status = match frame {
                Some(f) => {
                    self.stats.tx_packets += 1;
                    out.push(f);
                    NETIF_RSP_OKAY
                }
                None => {
                    self.stats.tx_errors += 1;
                    NETIF_RSP_ERROR
                }
            };
            let first_rsp = NetifTxResponse { id: first.id, status };
            let nulls =
                slots.extras.iter().map(|_| NetifTxResponse { id: 0, status: NETIF_RSP_NULL });
            let others = slots.data[1..].iter().map(|r| NetifTxResponse { id: r.id, status });
            for rsp in core::iter::once(first_rsp).chain(nulls).chain(others) {
                // Every slot taken has its response slot: staging cannot fail.
                let _ = self.tx.stage_response(rsp);
            }
        }
        Ok(self.tx.push_responses())
    }

    /// Delivers up to `budget` queued frames (as many as one batch of copies holds) into the
    /// frontend's receive requests; whether the frontend must be told.
    pub fn receive(&mut self, io: &mut impl GrantIo, budget: usize) -> Result<Notify, Fatal> {
        let mut batch: Vec<(NetifRxRequest, Frame)> = Vec::new();
        let mut bytes = 0;
        while batch.len() < budget {
            let Some(len) = self.rxq.front().map(|f| f.data.len()) else { break };
            if bytes + len > io.capacity() {
                break;
            }
            let req = match self.rx.next_request()? {
                Some(r) => r,
                None if self.rx.final_check_for_requests()? => continue,
                None => break,
            };
            let Some(f) = self.rxq.pop_front() else { break };
            bytes += len;
            batch.push((req, f));
        }
        if batch.is_empty() {
            return Ok(Notify::No);
        }
        let segs: Vec<Segment> = batch
            .iter()
            .map(|(r, f)| Segment { gref: r.gref, offset: 0, len: f.data.len() as u16 })
            .collect();
        let src: Vec<u8> = batch.iter().flat_map(|(_, f)| f.data.iter().copied()).collect();
        io.copy_out(&segs, &src)
            .map_err(|(gref, status)| Fatal::BadGrant { gref: gref.0, status })?;
        for (req, f) in batch {
            let flags = if f.csum_filled { NETRXF_DATA_VALIDATED } else { 0 };
            let rsp = NetifRxResponse { id: req.id, offset: 0, flags, status: f.data.len() as i16 };
            let _ = self.rx.stage_response(rsp);
            self.stats.rx_packets += 1;
        }
        Ok(self.rx.push_responses())
    }
}
