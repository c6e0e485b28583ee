//! A block device as a xenbus frontend (`device/vbd/<vdev>`), speaking Xen's blkif protocol
//! on a `ring-buffers` request/response ring: the frontend half of dom0's blkback.
//!
//! [`Blkfront::connect`] waits for the back end's InitWait, reads what it offers
//! (`max-ring-page-order`, `feature-max-indirect-segments`, ...), grants a ring of up to
//! four pages, its data pages and one indirect page, publishes the ring refs and the event
//! channel, goes Initialised, and once the back end is Connected reads `sectors`, `info` and
//! `sector-size` and goes Connected. I/O is synchronous: a request is staged, pushed, and
//! waited for (bounded). A transfer of up to [`DATA_PAGES`] pages goes in one request, direct
//! when it fits 11 segments, indirect otherwise (if the back end offers it). When the back end
//! closes the device, [`Blkfront::restart`] tears this end down (the ring's grants are ended
//! once the back end has unmapped them) and connects again. For the hostile-frontend tests,
//! [`Blkfront::push_raw`] and [`Blkfront::ring_page`] let a scenario break the protocol.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::io::blkif::*;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use ring_buffers::FrontRing;

use crate::memory::pages::{self, OwnPage};
use crate::memory::shared::{self, SharedPage};
use crate::xenbus::{self, Peer, XenbusState};
use crate::xenstore::Store;
use crate::{events, grant, time};

/// Data pages: the largest transfer in one request (128 KiB).
pub const DATA_PAGES: usize = 32;
/// How long a request may take before it is given up.
const REQUEST_TIMEOUT_NS: u64 = 10_000_000_000;

/// What the back end offers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub flush: bool,
    pub barrier: bool,
    pub discard: bool,
    pub max_indirect_segments: u32,
    pub max_ring_page_order: u32,
}

/// A connected (or connectable) virtual block device.
pub struct Blkfront {
    fe: String,
    be: Peer,
    /// Ring order asked for (clamped to the back end's maximum).
    order_wanted: u32,
    order: u32,
    ring_pages: Vec<OwnPage>,
    ring_grefs: Vec<GrantRef>,
    data: Vec<OwnPage>,
    data_grefs: Vec<GrantRef>,
    indirect: OwnPage,
    indirect_gref: GrantRef,
    conn: Option<(FrontRing<'static, BlkifRequest, BlkifResponse>, EvtchnPort)>,
    next_id: u64,
    pub sectors: u64,
    pub info: u32,
    pub sector_size: u32,
    pub features: Features,
    /// Requests answered, and how many of them went indirect.
    pub requests: u64,
    pub indirect_requests: u64,
}

/// Waits (bounded by `timeout_ns`) until `dir`'s state satisfies `want`.
pub fn wait_state(
    store: &mut dyn Store,
    dir: &str,
    want: fn(XenbusState) -> bool,
    timeout_ns: u64,
) -> XenbusState {
    let path = format!("{dir}/state");
    let _ = store.watch(&path, "blkfront");
    let deadline = time::now_ns() + timeout_ns;
    let mut s = xenbus::state(store, dir);
    while !want(s) && time::now_ns() < deadline {
        let _ = hypercall_abi::guest::set_timer_op(time::now_ns() + 20_000_000);
        events::wait();
        while store.watch_event().is_some() {}
        s = xenbus::state(store, dir);
    }
    let _ = store.unwatch(&path, "blkfront");
    s
}

fn xs_err(e: impl core::fmt::Debug) -> String {
    format!("xenstore: {e:?}")
}

impl Blkfront {
    /// Finds vbd `vdev` of domain `dom` and connects with a ring of 2^`order` pages (at most
    /// what the back end offers).
    pub fn connect(store: &mut dyn Store, dom: u16, vdev: u32, order: u32) -> Result<Self, String> {
        let fe = xenbus::frontend_dir(dom, "vbd", vdev);
        let be = xenbus::backend_of(store, &fe).ok_or_else(|| format!("{fe}: no backend"))?;
        let ring_pages = pages::alloc_pages(4).ok_or("no pages for the ring")?;
        let data: Vec<OwnPage> = (0..DATA_PAGES)
            .map(|_| pages::alloc_page())
            .collect::<Option<_>>()
            .ok_or("no data pages")?;
        let indirect = pages::alloc_page().ok_or("no indirect page")?;
        let refs = || grant::alloc_ref().ok_or("no grant refs");
        let ring_grefs = (0..4).map(|_| refs()).collect::<Result<Vec<_>, _>>()?;
        let data_grefs = (0..DATA_PAGES).map(|_| refs()).collect::<Result<Vec<_>, _>>()?;
        let indirect_gref = refs()?;
        let bdom = DomId(be.domid);
        for (g, p) in data_grefs.iter().zip(&data) {
            grant::grant_access(*g, bdom, p.mfn(), false);
        }
        grant::grant_access(indirect_gref, bdom, indirect.mfn(), true);
        let mut f = Blkfront {
            fe,
            be,
            order_wanted: order,
            order: 0,
            ring_pages,
            ring_grefs,
            data,
            data_grefs,
            indirect,
            indirect_gref,
            conn: None,
            next_id: 1,
            sectors: 0,
            info: 0,
            sector_size: 0,
            features: Features::default(),
            requests: 0,
            indirect_requests: 0,
        };
        f.handshake(store)?;
        Ok(f)
    }

    fn read_flag(store: &mut dyn Store, dir: &str, key: &str) -> u64 {
        xenbus::read_u64(store, &format!("{dir}/{key}")).unwrap_or(0)
    }

    fn handshake(&mut self, store: &mut dyn Store) -> Result<(), String> {
        let be = self.be.dir.clone();
        let s = wait_state(store, &be, |s| s == XenbusState::InitWait, 10_000_000_000);
        if s != XenbusState::InitWait {
            return Err(format!("backend state {s:?}, not InitWait"));
        }
        let max_order = Self::read_flag(store, &be, "max-ring-page-order") as u32;
        self.order = self.order_wanted.min(max_order).min(2);
        let n = 1usize << self.order;
        let mut ring =
            shared::own_request_ring::<BlkifRequest, BlkifResponse>(&self.ring_pages[..n])
                .ok_or("ring pages are not consecutive")?;
        ring.init();
        let bdom = DomId(self.be.domid);
        for i in 0..n {
            grant::grant_access(self.ring_grefs[i], bdom, self.ring_pages[i].mfn(), false);
        }
        let port = events::alloc_unbound(bdom, |_| {}).map_err(|e| format!("evtchn: {e:?}"))?;
        let fe = self.fe.clone();
        let mut w =
            |k: &str, v: String| store.write(0, &format!("{fe}/{k}"), v.as_bytes()).map_err(xs_err);
        if self.order == 0 {
            w("ring-ref", format!("{}", self.ring_grefs[0].0))?;
        } else {
            w("ring-page-order", format!("{}", self.order))?;
            for i in 0..n {
                w(&format!("ring-ref{i}"), format!("{}", self.ring_grefs[i].0))?;
            }
        }
        w("event-channel", format!("{}", port.0))?;
        w("protocol", "x86_64-abi".into())?;
        xenbus::set_state(store, &fe, XenbusState::Initialised).map_err(xs_err)?;
        let s = wait_state(store, &be, |s| s == XenbusState::Connected, 10_000_000_000);
        if s != XenbusState::Connected {
            return Err(format!("backend state {s:?}, not Connected"));
        }
        self.sectors = Self::read_flag(store, &be, "sectors");
        self.info = Self::read_flag(store, &be, "info") as u32;
        self.sector_size = Self::read_flag(store, &be, "sector-size") as u32;
        self.features = Features {
            flush: Self::read_flag(store, &be, "feature-flush-cache") == 1,
            barrier: Self::read_flag(store, &be, "feature-barrier") == 1,
            discard: Self::read_flag(store, &be, "feature-discard") == 1,
            max_indirect_segments: Self::read_flag(store, &be, "feature-max-indirect-segments")
                as u32,
            max_ring_page_order: max_order,
        };
        xenbus::set_state(store, &fe, XenbusState::Connected).map_err(xs_err)?;
        self.conn = Some((FrontRing::new(ring), port));
        Ok(())
    }

    /// Pages in the ring.
    pub fn ring_pages(&self) -> usize {
        1 << self.order
    }

    /// The back end's state now.
    pub fn backend_state(&self, store: &mut dyn Store) -> XenbusState {
        xenbus::state(store, &self.be.dir)
    }

    /// Tears this end down: event channel closed, the ring's grants ended once the back end
    /// has let go of them (true if it has, within `timeout_ns`), state Closed.
    pub fn teardown(&mut self, store: &mut dyn Store, timeout_ns: u64) -> bool {
        if let Some((_ring, port)) = self.conn.take() {
            events::off(port);
            let _ = hypercall_abi::guest::evtchn_close(port);
        }
        let _ = xenbus::set_state(store, &self.fe, XenbusState::Closing);
        let deadline = time::now_ns() + timeout_ns;
        let n = 1usize << self.order;
        let mut released = false;
        while time::now_ns() < deadline {
            if self.ring_grefs[..n].iter().all(|&g| grant::end_access(g)) {
                released = true;
                break;
            }
            time::sleep_ns(1_000_000);
        }
        let _ = xenbus::set_state(store, &self.fe, XenbusState::Closed);
        released
    }

    /// A restart of this end: torn down, then connected again.
    pub fn restart(&mut self, store: &mut dyn Store) -> Result<(), String> {
        if !self.teardown(store, 5_000_000_000) {
            return Err("the back end kept the ring mapped".into());
        }
        xenbus::set_state(store, &self.fe, XenbusState::Initialising).map_err(xs_err)?;
        self.handshake(store)
    }

    /// Stages `req`, pushes it, and notifies if needed (no waiting): for scenarios that
    /// misbehave on purpose.
    pub fn push_raw(&mut self, req: BlkifRequest) -> Result<(), String> {
        let (ring, port) = self.conn.as_mut().ok_or("not connected")?;
        ring.stage(req).map_err(|_| "ring full")?;
        if ring.push_requests().is_yes() {
            let _ = events::send(*port);
        }
        Ok(())
    }

    /// The event channel to the back end.
    pub fn port(&self) -> Option<EvtchnPort> {
        self.conn.as_ref().map(|c| c.1)
    }

    /// The ring's first page, as shared memory: for scenarios that corrupt it.
    pub fn ring_page(&self) -> SharedPage {
        self.ring_pages[0].shared()
    }

    /// A data page's grant ref (for scenarios that build their own requests).
    pub fn data_gref(&self, i: usize) -> GrantRef {
        self.data_grefs[i]
    }

    /// Sends `req` and waits for its response; the response's status.
    fn submit(&mut self, mut req: BlkifRequest) -> Result<i16, String> {
        let id = self.next_id;
        self.next_id += 1;
        // The id sits at the same offset in every request form.
        req.id = id;
        let (ring, port) = self.conn.as_mut().ok_or("not connected")?;
        ring.stage(req).map_err(|_| "ring full")?;
        if ring.push_requests().is_yes() {
            let _ = events::send(*port);
        }
        let deadline = time::now_ns() + REQUEST_TIMEOUT_NS;
        loop {
            let mut got = None;
            ring.poll_responses(|r| {
                if r.id == id {
                    got = Some(r.status);
                }
            })
            .map_err(|e| format!("ring: {e:?}"))?;
            if let Some(st) = got {
                self.requests += 1;
                return Ok(st);
            }
            if ring.final_check_for_responses().map_err(|e| format!("ring: {e:?}"))? {
                continue;
            }
            if time::now_ns() > deadline {
                return Err("no response".into());
            }
            let _ = hypercall_abi::guest::set_timer_op(time::now_ns() + 20_000_000);
            events::wait();
        }
    }

    /// A read or write of `len` bytes (whole sectors, at most [`DATA_PAGES`] pages) at
    /// `sector`, through the data pages.
    fn rw(&mut self, op: u8, sector: u64, len: usize, flush: bool) -> Result<(), String> {
        if len == 0 || !len.is_multiple_of(512) || len > DATA_PAGES * 4096 {
            return Err(format!("bad length {len}"));
        }
        let npages = len.div_ceil(4096);
        let seg = |i: usize| {
            let bytes = (len - i * 4096).min(4096);
            BlkifRequestSegment {
                gref: self.data_grefs[i],
                first_sect: 0,
                last_sect: (bytes / 512 - 1) as u8,
                _pad: 0,
            }
        };
        let status = if npages <= BLKIF_MAX_SEGMENTS_PER_REQUEST {
            let mut r = BlkifRequest {
                operation: if flush { BLKIF_OP_FLUSH_DISKCACHE } else { op },
                nr_segments: npages as u8,
                sector_number: sector,
                ..Default::default()
            };
            for i in 0..npages {
                r.seg[i] = seg(i);
            }
            self.submit(r)?
        } else {
            if flush || (npages as u32) > self.features.max_indirect_segments {
                return Err(format!("{npages} pages need indirect segments the back end lacks"));
            }
            let page = self.indirect.shared();
            for i in 0..npages {
                page.write(i * 8, zerocopy::IntoBytes::as_bytes(&seg(i)));
            }
            let mut ind = BlkifRequestIndirect {
                operation: BLKIF_OP_INDIRECT,
                indirect_op: op,
                nr_segments: npages as u16,
                sector_number: sector,
                ..Default::default()
            };
            ind.indirect_grefs[0] = self.indirect_gref;
            let mut r = BlkifRequest::default();
            zerocopy::IntoBytes::as_mut_bytes(&mut r)[..64]
                .copy_from_slice(zerocopy::IntoBytes::as_bytes(&ind));
            self.indirect_requests += 1;
            self.submit(r)?
        };
        if status == BLKIF_RSP_OKAY { Ok(()) } else { Err(format!("status {status}")) }
    }

    /// Reads `buf.len()` bytes (whole sectors, at most [`DATA_PAGES`] pages) from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), String> {
        self.rw(BLKIF_OP_READ, sector, buf.len(), false)?;
        for (i, chunk) in buf.chunks_mut(4096).enumerate() {
            self.data[i].shared().read(0, chunk);
        }
        Ok(())
    }

    /// Writes `buf` (whole sectors, at most [`DATA_PAGES`] pages) at `sector`; with `flush`,
    /// as a flush-cache request carrying the data (durable, with everything answered before
    /// it, once answered).
    pub fn write(&mut self, sector: u64, buf: &[u8], flush: bool) -> Result<(), String> {
        for (i, chunk) in buf.chunks(4096).enumerate() {
            self.data[i].shared().write(0, chunk);
        }
        self.rw(BLKIF_OP_WRITE, sector, buf.len(), flush)
    }

    /// Makes every write answered so far durable.
    pub fn flush(&mut self) -> Result<(), String> {
        let st = self
            .submit(BlkifRequest { operation: BLKIF_OP_FLUSH_DISKCACHE, ..Default::default() })?;
        if st == BLKIF_RSP_OKAY { Ok(()) } else { Err(format!("status {st}")) }
    }

    /// Discards `n` sectors from `sector`.
    pub fn discard(&mut self, sector: u64, n: u64) -> Result<(), String> {
        let d = BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            sector_number: sector,
            nr_sectors: n,
            ..Default::default()
        };
        let mut r = BlkifRequest::default();
        zerocopy::IntoBytes::as_mut_bytes(&mut r)[..32]
            .copy_from_slice(zerocopy::IntoBytes::as_bytes(&d));
        let st = self.submit(r)?;
        if st == BLKIF_RSP_OKAY { Ok(()) } else { Err(format!("status {st}")) }
    }
}
