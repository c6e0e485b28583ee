//! The block back end as a room: every domU's vbds (from its configuration's `disk=`
//! entries), their xenbus nodes, and each round the xenbus step (`backends::xenbus::step`) and
//! the serving of connected rings (`conn`). A vbd whose frontend misbehaves is closed with
//! one log line (`dom0: d<id> (<name>) vbd <vdev>: closed: <why>`) and holds nothing from then
//! on; the domain's other devices and every other domain carry on. The frontend may start
//! over, but after [`MAX_STRIKES`] closes for cause the vbd stays closed for good, so a guest
//! cannot make dom0 print without end. A vbd's counters are logged once, when its domain goes.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::io::blkif::VDISK_READONLY;
use hypercall_abi::{DomId, EvtchnPort, GrantRef};
use pv_guest::println;
use pv_guest::xenbus::{self, Store, XenbusState};

use super::conn::{Buffers, Conn, Served, Stats, Target};
use super::request::MAX_INDIRECT_SEGMENTS;
use super::vbd::{self, Region, VbdSpec};
use crate::backends::xenbus::{DeviceNodes, Step, step};
use crate::drivers::iobuf::{GrantPath, IoBuf};
use crate::drivers::virtio::blk::Disk;
use crate::xenstored::XenStore;
use crate::xenstored::local::LocalStore;

/// Largest ring this back end maps: 2^order pages (`max-ring-page-order`).
pub const MAX_RING_PAGE_ORDER: u32 = 2;
/// How often a connected vbd's frontend state is looked at: a XenStore read per vbd per
/// round would cost every request, and a frontend that closes or restarts can wait this long.
const STATE_LOOK_NS: u64 = 20_000_000;
/// Closes for cause after which a vbd is not offered again.
pub const MAX_STRIKES: u32 = 3;

/// One vbd of a domU.
struct Vbd {
    nodes: DeviceNodes,
    /// `d<id> (<name>) vbd <vdev>`, the prefix of its log lines.
    label: String,
    spec: VbdSpec,
    region: Region,
    state: XenbusState,
    conn: Option<Conn>,
    /// When the frontend's state was last read.
    looked_at: u64,
    /// Closes for cause so far.
    strikes: u32,
    /// Counters over every connection so far.
    totals: Stats,
}

/// Every domU's vbds.
#[derive(Default)]
pub struct BlkBackend {
    vbds: BTreeMap<u16, Vec<Vbd>>,
    buffers: Option<Buffers>,
    /// How requests' data move (`blkback_grants=copy|map`; copy unless asked).
    path: GrantPath,
}

impl BlkBackend {
    /// A back end whose requests move their data by `path`.
    pub fn new(path: GrantPath) -> Self {
        BlkBackend { path, ..Default::default() }
    }

    /// Creates `dom`'s vbds from its `disk=` entries on dom0's `disks`: their xenbus nodes,
    /// the back end in InitWait. Each entry that cannot be served is one log line.
    pub fn add(
        &mut self,
        xs: &mut XenStore,
        dom: DomId,
        name: &str,
        entries: &[String],
        disks: &[Disk],
    ) {
        for e in entries {
            let made = vbd::parse(e).and_then(|spec| {
                let disk = disks.get(spec.disk).ok_or_else(|| {
                    format!("no virtio disk {} (dom0 has {})", spec.disk, disks.len())
                })?;
                let region = spec.region(disk.sectors())?;
                if spec.writable && disk.is_read_only() {
                    return Err(format!("virtio disk {} is read-only", spec.disk));
                }
                // As xl refuses a disk another domain has writable: no two vbds share a
                // sector if either may write it.
                let clash = self.vbds.values().flatten().find(|o| {
                    o.spec.disk == spec.disk
                        && (o.spec.writable || spec.writable)
                        && o.region.overlaps(&region)
                });
                if let Some(o) = clash {
                    return Err(format!("it overlaps {}", o.label));
                }
                Ok((spec, region))
            });
            let (spec, region) = match made {
                Ok(x) => x,
                Err(why) => {
                    println!("dom0: d{} ({name}): disk '{e}' not attached: {why}", dom.0);
                    continue;
                }
            };
            if self.buffers.is_none() {
                self.buffers = IoBuf::new(MAX_INDIRECT_SEGMENTS)
                    .zip(IoBuf::new(super::request::MAX_INDIRECT_PAGES))
                    .map(|(mut data, mut indirect)| {
                        data.set_path(self.path);
                        indirect.set_path(self.path);
                        Buffers { data, indirect, segs: Vec::new() }
                    });
            }
            let be_keys = [
                ("params", format!("virtio{}", spec.disk)),
                ("type", "phy".into()),
                ("mode", (if spec.writable { "w" } else { "r" }).into()),
                ("dev", spec.vdev_name.clone()),
                ("sectors", format!("{}", region.sectors)),
                ("sector-size", "512".into()),
                ("physical-sector-size", "512".into()),
                ("info", format!("{}", if spec.writable { 0 } else { VDISK_READONLY })),
                ("feature-flush-cache", "1".into()),
                ("feature-barrier", "1".into()),
                ("feature-discard", (if spec.writable { "1" } else { "0" }).into()),
                ("discard-granularity", "4096".into()),
                ("discard-alignment", "0".into()),
                ("discard-secure", "0".into()),
                ("feature-max-indirect-segments", format!("{MAX_INDIRECT_SEGMENTS}")),
                ("max-ring-page-order", format!("{MAX_RING_PAGE_ORDER}")),
                ("feature-persistent", "0".into()),
            ];
            let fe_keys =
                [("virtual-device", format!("{}", spec.vdev)), ("device-type", "disk".into())];
            let nodes = DeviceNodes::create(xs, dom, "vbd", spec.vdev, &fe_keys, &be_keys);
            println!(
                "dom0: d{} ({name}) vbd {} ({}): virtio{} sectors {}+{}, {}, data by grant {}",
                dom.0,
                spec.vdev_name,
                spec.vdev,
                spec.disk,
                region.start,
                region.sectors,
                if spec.writable { "read-write" } else { "read-only" },
                if self.path == GrantPath::Map { "map" } else { "copy" }
            );
            let label = format!("d{} ({name}) vbd {}", dom.0, spec.vdev_name);
            self.vbds.entry(dom.0).or_default().push(Vbd {
                nodes,
                label,
                spec,
                region,
                state: XenbusState::InitWait,
                conn: None,
                looked_at: 0,
                strikes: 0,
                totals: Stats::default(),
            });
        }
    }

    /// One round of `id`'s vbds; true if work is left for another round right away.
    pub fn serve(
        &mut self,
        id: u16,
        ls: &mut LocalStore<'_>,
        disks: &mut [Disk],
        fired: &[EvtchnPort],
        now: u64,
    ) -> bool {
        let Some(vbds) = self.vbds.get_mut(&id) else { return false };
        let mut more = false;
        for v in vbds.iter_mut() {
            if v.strikes >= MAX_STRIKES {
                continue;
            }
            let fe = if v.conn.is_some() && now.saturating_sub(v.looked_at) < STATE_LOOK_NS {
                XenbusState::Connected
            } else {
                v.looked_at = now;
                xenbus::state(ls, &v.nodes.fe_dir)
            };
            match step(v.state, fe, v.conn.is_some()) {
                Step::Stay => {}
                Step::Connect => match connect(ls, DomId(id), &v.nodes.fe_dir, now) {
                    Ok(c) => {
                        v.conn = Some(c);
                        set(ls, v, XenbusState::Connected);
                    }
                    Err(why) => close_for_cause(ls, v, &why),
                },
                Step::Disconnect(s) => {
                    release(v);
                    set(ls, v, s);
                }
                Step::Switch(s) => set(ls, v, s),
            }
            let (Some(c), Some(b)) = (v.conn.as_mut(), self.buffers.as_mut()) else { continue };
            let Some(disk) = disks.get_mut(v.spec.disk) else { continue };
            let mut t = Target { disk, region: v.region, writable: v.spec.writable };
            match c.serve(fired.contains(&c.port()), now, &mut t, b) {
                Served::Idle => {}
                Served::More => more = true,
                Served::Broken(why) => {
                    release(v);
                    close_for_cause(ls, v, &why);
                }
            }
        }
        more
    }

    /// `id` is gone: let go of its rings and remove its back-end nodes.
    pub fn disconnect(&mut self, id: u16, xs: &mut XenStore) {
        for mut v in self.vbds.remove(&id).unwrap_or_default() {
            release(&mut v);
            v.nodes.remove(xs);
            let s = v.totals;
            log::info!(
                "{}: {} reads, {} writes, {} flushes, {} discards ({} indirect, {} errors), {} ms busy ({} ms copying)",
                v.label,
                s.reads,
                s.writes,
                s.flushes,
                s.discards,
                s.indirect,
                s.errors,
                s.busy_ns / 1_000_000,
                s.copy_ns / 1_000_000
            );
        }
    }
}

fn set(ls: &mut LocalStore<'_>, v: &mut Vbd, s: XenbusState) {
    v.state = s;
    let _ = xenbus::set_state(ls, &v.nodes.be_dir, s);
}

/// Closes the vbd for what its frontend did: one line, state Closing (nothing is held: the
/// caller released the connection); after [`MAX_STRIKES`], Closed for good.
fn close_for_cause(ls: &mut LocalStore<'_>, v: &mut Vbd, why: &str) {
    v.strikes += 1;
    if v.strikes >= MAX_STRIKES {
        println!(
            "dom0: {}: closed: {why}; closed for good after {} violations",
            v.label, v.strikes
        );
        set(ls, v, XenbusState::Closed);
    } else {
        println!("dom0: {}: closed: {why}", v.label);
        set(ls, v, XenbusState::Closing);
    }
}

/// Ends the vbd's connection, if any: the ring unmapped, its counters added to the totals.
fn release(v: &mut Vbd) {
    if let Some(c) = v.conn.take() {
        v.totals.add(&c.stats);
        if !c.close() {
            println!("dom0: {}: the hypervisor refused to unmap its ring", v.label);
        }
    }
}

/// Reads what the frontend published (its ring's grant refs and order, its event channel,
/// its protocol) and connects.
fn connect(ls: &mut LocalStore<'_>, dom: DomId, fe: &str, now: u64) -> Result<Conn, String> {
    if let Ok(p) = ls.read_str(0, &format!("{fe}/protocol")) {
        let p = p.trim_end_matches('\0');
        if !p.is_empty() && p != "x86_64-abi" {
            return Err(format!("protocol {p:?} (only x86_64-abi)"));
        }
    }
    let order = xenbus::read_u64(ls, &format!("{fe}/ring-page-order")).unwrap_or(0);
    if order > u64::from(MAX_RING_PAGE_ORDER) {
        return Err(format!("ring-page-order {order} (at most {MAX_RING_PAGE_ORDER})"));
    }
    let mut grefs = Vec::new();
    if order == 0
        && let Some(g) = xenbus::read_u64(ls, &format!("{fe}/ring-ref"))
    {
        grefs.push(g);
    } else {
        for i in 0..(1u64 << order) {
            grefs.push(
                xenbus::read_u64(ls, &format!("{fe}/ring-ref{i}"))
                    .ok_or_else(|| format!("no ring-ref{i}"))?,
            );
        }
    }
    let grefs: Vec<GrantRef> = grefs
        .into_iter()
        .map(|g| u32::try_from(g).map(GrantRef).map_err(|_| format!("ring-ref {g}")))
        .collect::<Result<_, _>>()?;
    let port = xenbus::read_u64(ls, &format!("{fe}/event-channel"))
        .and_then(|p| u32::try_from(p).ok())
        .ok_or("no event-channel")?;
    Conn::connect(dom, &grefs, EvtchnPort(port), now)
}
