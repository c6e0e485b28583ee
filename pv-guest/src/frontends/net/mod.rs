//! netfront: this kernel's half of Xen's network device (`device/vif/<n>`, `io/netif.h`) on
//! `ring-buffers`' front ring, and (`smol`) the `smoltcp` device over it.
//!
//! Buffers are granted once and reused (the back end copies, so a grant may stay): each
//! receive request offers one page of [`RX_BUFS`]; each transmit slot is half a page of
//! [`TX_PAGES`] (a frame is at most 1514 bytes, so two fit a page). Handshake: wait for the
//! back end's InitWait, read the `mac` the toolstack wrote, publish `tx-ring-ref`,
//! `rx-ring-ref`, `event-channel`, `request-rx-copy=1` and go Initialised, then Connected once
//! the back end is. Frames leave with `NETTXF_csum_blank | NETTXF_data_validated` when the
//! caller left the TCP/UDP checksum to the back end (checksum offload, as Linux's netfront
//! does), else with no flags. Responses are checked (id, offset, length) before use: the back
//! end is trusted with the data, not with this kernel's memory.

pub mod smol;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::io::netif::*;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use ring_buffers::{FrontRing, Notify};

use crate::memory::pages::{self, OwnPage};
use crate::xenbus::{self, Peer, XenbusState, wait_state};
use crate::xenstore::Store;
use crate::{events, grant, memory::shared};

/// Receive buffers (pages) offered to the back end.
pub const RX_BUFS: usize = 32;
/// Pages of transmit buffers (two frames each).
pub const TX_PAGES: usize = 16;
const TX_SLOTS: usize = TX_PAGES * 2;
/// Largest frame sent.
pub const MTU_FRAME: usize = 1514;

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    pub tx: u64,
    pub tx_errors: u64,
    pub rx: u64,
    pub rx_bad: u64,
}

/// A connected vif.
pub struct Netfront {
    pub mac: [u8; 6],
    pub dir: String,
    be_dir: String,
    tx_pages_ring: crate::memory::shared::SharedPage,
    tx: FrontRing<'static, NetifTxRequest, NetifTxResponse>,
    rx: FrontRing<'static, NetifRxRequest, NetifRxResponse>,
    port: EvtchnPort,
    tx_pages: Vec<(OwnPage, GrantRef)>,
    tx_free: Vec<u16>,
    rx_bufs: Vec<(OwnPage, GrantRef)>,
    ready: VecDeque<Vec<u8>>,
    pub stats: NetStats,
}

fn grant_page(to: DomId, readonly: bool) -> Result<(OwnPage, GrantRef), String> {
    let page = pages::alloc_page().ok_or("out of pages")?;
    let gref = grant::alloc_ref().ok_or("out of grant refs")?;
    grant::grant_access(gref, to, page.mfn(), readonly);
    Ok((page, gref))
}

fn write(store: &mut dyn Store, path: &str, v: &str) -> Result<(), String> {
    store.write(0, path, v.as_bytes()).map_err(|e| format!("{path}: {e:?}"))
}

impl Netfront {
    /// Connects vif `devid` of this domain (`dom`).
    pub fn connect(store: &mut dyn Store, dom: u16, devid: u32) -> Result<Netfront, String> {
        let fe = xenbus::frontend_dir(dom, "vif", devid);
        let Peer { dir: be, domid } =
            xenbus::backend_of(store, &fe).ok_or_else(|| format!("{fe}: no backend"))?;
        let be_dom = DomId(domid);
        let s = wait_state(store, &be, |s| s == XenbusState::InitWait, 10_000_000_000);
        if s != XenbusState::InitWait {
            return Err(format!("backend state {s:?}, not InitWait"));
        }
        let mac_text =
            store.read_str(0, &format!("{fe}/mac")).map_err(|e| format!("mac: {e:?}"))?;
        let mac = hypercall_abi::io::netif::parse_mac(mac_text.trim_end_matches('\0'))
            .ok_or("bad mac")?;
        let (tx_page, tx_ref) = grant_page(be_dom, false)?;
        let (rx_page, rx_ref) = grant_page(be_dom, false)?;
        let mut tx_ring = shared::request_ring(tx_page.shared());
        tx_ring.init();
        let mut rx_ring = shared::request_ring(rx_page.shared());
        rx_ring.init();
        let mut nf = Netfront {
            mac,
            dir: fe.clone(),
            be_dir: be.clone(),
            tx_pages_ring: tx_page.shared(),
            tx: FrontRing::new(tx_ring),
            rx: FrontRing::new(rx_ring),
            port: EvtchnPort(0),
            tx_pages: Vec::new(),
            tx_free: (0..TX_SLOTS as u16).rev().collect(),
            rx_bufs: Vec::new(),
            ready: VecDeque::new(),
            stats: NetStats::default(),
        };
        for _ in 0..TX_PAGES {
            nf.tx_pages.push(grant_page(be_dom, true)?);
        }
        for _ in 0..RX_BUFS {
            nf.rx_bufs.push(grant_page(be_dom, false)?);
        }
        nf.port = events::alloc_unbound(be_dom, |_| {}).map_err(|e| format!("evtchn: {e:?}"))?;
        write(store, &format!("{fe}/tx-ring-ref"), &format!("{}", tx_ref.0))?;
        write(store, &format!("{fe}/rx-ring-ref"), &format!("{}", rx_ref.0))?;
        write(store, &format!("{fe}/event-channel"), &format!("{}", nf.port.0))?;
        write(store, &format!("{fe}/request-rx-copy"), "1")?;
        write(store, &format!("{fe}/feature-rx-notify"), "1")?;
        // Frames must come with their checksums: smoltcp verifies every one.
        write(store, &format!("{fe}/feature-no-csum-offload"), "1")?;
        xenbus::set_state(store, &fe, XenbusState::Initialised).map_err(|e| format!("{e:?}"))?;
        let s = wait_state(store, &be, |s| s == XenbusState::Connected, 10_000_000_000);
        if s != XenbusState::Connected {
            return Err(format!("backend state {s:?}, not Connected"));
        }
        xenbus::set_state(store, &fe, XenbusState::Connected).map_err(|e| format!("{e:?}"))?;
        for id in 0..RX_BUFS {
            let gref = nf.rx_bufs[id].1;
            let _ = nf.rx.stage(NetifRxRequest { id: id as u16, _pad: 0, gref });
        }
        nf.kick_rx();
        Ok(nf)
    }

    /// The transmit ring's page: the guest's own memory, which it may write at will (the
    /// hostile scenarios do, to show the back end copes).
    pub fn tx_page(&self) -> crate::memory::shared::SharedPage {
        self.tx_pages_ring
    }

    /// The directory of the back end.
    pub fn backend_dir(&self) -> &str {
        &self.be_dir
    }

    /// The event channel (to wait on).
    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    fn kick_rx(&mut self) {
        if self.rx.push_requests() == Notify::Yes {
            let _ = events::send(self.port);
        }
    }

    /// Takes the back end's transmit responses: their slots are free again.
    fn reclaim(&mut self) {
        let mut freed = Vec::new();
        let _ = self.tx.poll_responses(|r| {
            if r.status != NETIF_RSP_NULL {
                freed.push(r);
            }
        });
        for r in freed {
            if usize::from(r.id) < TX_SLOTS && !self.tx_free.contains(&r.id) {
                self.tx_free.push(r.id);
            }
            if r.status != NETIF_RSP_OKAY {
                self.stats.tx_errors += 1;
            }
        }
    }

    /// Whether a frame can be sent now.
    pub fn can_send(&mut self) -> bool {
        self.reclaim();
        !self.tx_free.is_empty() && !self.tx.is_full()
    }

    /// Sends `frame`; `csum_blank`: its TCP/UDP checksum is left for the back end to fill.
    /// False if no slot is free (or the frame is too big).
    pub fn send(&mut self, frame: &[u8], csum_blank: bool) -> bool {
        if frame.len() > MTU_FRAME || !self.can_send() {
            return false;
        }
        let Some(id) = self.tx_free.pop() else { return false };
        let (page, gref) = self.tx_pages[usize::from(id / 2)];
        let offset = (id % 2) * 2048;
        page.shared().write(usize::from(offset), frame);
        let flags = if csum_blank { NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED } else { 0 };
        let req = NetifTxRequest { gref, offset, flags, id, size: frame.len() as u16 };
        if self.tx.stage(req).is_err() {
            self.tx_free.push(id);
            return false;
        }
        if self.tx.push_requests() == Notify::Yes {
            let _ = events::send(self.port);
        }
        self.stats.tx += 1;
        true
    }

    /// Takes received frames into the ready queue and offers their buffers again.
    pub fn poll(&mut self) {
        let mut rsps = Vec::new();
        let _ = self.rx.poll_responses(|r| rsps.push(r));
        for r in &rsps {
            let id = usize::from(r.id);
            let Some(&(page, gref)) = self.rx_bufs.get(id) else {
                self.stats.rx_bad += 1;
                continue;
            };
            let len = r.status;
            let off = usize::from(r.offset);
            if len > 0 && off + len as usize <= 4096 && r.flags & NETRXF_MORE_DATA == 0 {
                let mut buf = alloc::vec![0u8; len as usize];
                page.shared().read(off, &mut buf);
                self.ready.push_back(buf);
                self.stats.rx += 1;
            } else {
                self.stats.rx_bad += 1;
            }
            let _ = self.rx.stage(NetifRxRequest { id: r.id, _pad: 0, gref });
        }
        if !rsps.is_empty() {
            self.kick_rx();
        }
        self.reclaim();
    }

    /// The next frame received.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        if self.ready.is_empty() {
            self.poll();
        }
        self.ready.pop_front()
    }

    /// Asks to be woken by the next response on either ring (before blocking): true if some
    /// arrived meanwhile.
    pub fn arm(&mut self) -> bool {
        let rx = self.rx.final_check_for_responses().unwrap_or(true);
        let tx = self.tx.final_check_for_responses().unwrap_or(true);
        rx || tx || !self.ready.is_empty()
    }
}
