//! dom0's services, one round of work at a time: [`Services`] owns the rooms and only
//! dispatches to them. Each round, for every domU served: its XenStore ring (`xenstored`), its
//! console (`backends::console`), its secondary consoles (`backends::vcons`), its vbds
//! (`backends::blk`); then dom0's own
//! XenStore events and its serial input (`drivers::serial`, routed by the console back end);
//! then the network back end and its bridge (`backends::net`: vifs and the uplink NIC's
//! frames), then the devices' interrupts (`drivers`, within a budget).
//! Adopting a domU connects each room to it and publishes its rings in XenStore; forgetting it
//! lets each room go of it. Which domains to adopt or forget, and when, is the toolstack's
//! (`toolstack::domains`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::event_channel::EvtchnStatusDetail;
use hypercall_abi::{DomId, EvtchnPort};
use pv_guest::{events, println, time};

use crate::backends::blk::BlkBackend;
use crate::backends::console::Consoles;
use crate::backends::net::backend::NetBackend;
use crate::backends::vcons::VconsBackend;
use crate::drivers::Devices;
use crate::drivers::iobuf::GrantPath;
use crate::drivers::serial::Serial;
use crate::drivers::virtio::blk::Disk;
use crate::xenstored::server::Xenstored;

/// What dom0 was asked to do (its command line).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Give every domU a secondary console device (`device/console/1`).
    pub vcons: bool,
    /// Restart the secondary-console back end once after this many lines (0: never).
    pub vcons_restart_after: u64,
    /// Keep serving after the last domU is gone.
    pub serve: bool,
    /// The serial line belongs to the shell (`shell=1`): the services do not read it.
    pub shell: bool,
    /// Hold guests' console lines until someone attaches (`quiet=1`, the interactive shell).
    pub quiet: bool,
    /// How blkback moves request data (`blkback_grants=map`; grant copy otherwise).
    pub blk_grants: GrantPath,
}

/// dom0's services.
pub struct Services {
    xenstored: Xenstored,
    consoles: Consoles,
    vcons: VconsBackend,
    blk: BlkBackend,
    net: NetBackend,
    serial: Serial,
    /// The machine's devices dom0 drives (found at start).
    devices: Option<Devices>,
    /// The domUs served, by id: their names.
    guests: BTreeMap<u16, String>,
    cfg: Config,
}

/// The first ports of `dom` that are unbound and offered to dom0, in order: the builder
/// allocates the XenStore port first, then the console port.
fn offered_ports(dom: DomId) -> Vec<EvtchnPort> {
    (1..16)
        .map(EvtchnPort)
        .filter(|&p| {
            matches!(
                hypercall_abi::guest::evtchn_status(dom, p).map(|s| s.detail()),
                Ok(EvtchnStatusDetail::Unbound { dom: DomId(0) })
            )
        })
        .collect()
}

impl Services {
    pub fn new(cfg: Config) -> Self {
        let mut consoles = Consoles::default();
        consoles.set_quiet(cfg.quiet);
        Services {
            xenstored: Xenstored::new(),
            consoles,
            vcons: VconsBackend::new(cfg.vcons_restart_after),
            blk: BlkBackend::new(cfg.blk_grants),
            net: NetBackend::new(),
            serial: Serial::default(),
            devices: None,
            guests: BTreeMap::new(),
            cfg,
        }
    }

    /// Hands over the devices dom0 found, served each round from now on.
    pub fn attach_devices(&mut self, devices: Devices) {
        if !devices.virtio.nics.is_empty() {
            self.net.attach_uplink();
        }
        self.devices = Some(devices);
    }

    /// Whether `dom` is being served.
    pub fn serves(&self, dom: DomId) -> bool {
        self.guests.contains_key(&dom.0)
    }

    /// dom0's virtio disks (none without devices).
    pub fn disks(&mut self) -> &mut [Disk] {
        self.devices.as_mut().map_or(&mut [][..], |d| &mut d.virtio.disks[..])
    }

    /// The consoles (the shell attaches to one).
    pub fn consoles(&mut self) -> &mut Consoles {
        &mut self.consoles
    }

    /// The served domUs' names by id.
    pub fn names(&self) -> &BTreeMap<u16, String> {
        &self.guests
    }

    /// Writes `value` at `path` in XenStore as the privileged domain (watches fire).
    pub fn xs_write(&mut self, path: &str, value: &[u8]) -> Result<(), String> {
        self.xenstored
            .engine()
            .write_privileged(path, value)
            .map_err(|e| format!("xenstore write {path}: {e:?}"))
    }

    /// Reads `path` in XenStore (None if absent).
    pub fn xs_read(&mut self, path: &str) -> Option<Vec<u8>> {
        use pv_guest::xenstore::Store;
        self.xenstored.local().read(0, path).ok()
    }

    /// Ids of the domUs being served.
    pub fn guest_ids(&self) -> Vec<u16> {
        self.guests.keys().copied().collect()
    }

    /// Takes on a domU the hypervisor (or the toolstack) started: its XenStore home, its
    /// XenStore ring (grant ref 1), its console ring (grant ref 0), and the event channels it
    /// offered dom0; and its vbds, from its configuration's `disk=` entries.
    pub fn adopt(&mut self, dom: DomId, name: &str, disks: &[String]) {
        if self.guests.contains_key(&dom.0) {
            return;
        }
        let _ = self.xenstored.engine().create_domain_home(dom, name);
        let ports = offered_ports(dom);
        let (store_port, console_port) = (ports.first().copied(), ports.get(1).copied());
        let store = store_port.and_then(|rp| self.xenstored.connect(dom, rp));
        let console = console_port.and_then(|rp| self.consoles.connect(dom, rp));
        if let (Some(s), Some(c)) = (store, console) {
            let xs = self.xenstored.engine();
            let home = format!("/local/domain/{}", dom.0);
            let _ = xs.write_privileged(&format!("{home}/console/ring-ref"), b"0");
            let _ =
                xs.write_privileged(&format!("{home}/console/port"), format!("{}", c.0).as_bytes());
            let _ =
                xs.write_privileged(&format!("{home}/store/port"), format!("{}", s.0).as_bytes());
            let _ = xs.introduce_domain(dom);
        }
        println!(
            "dom0: d{} ({name}) adopted: xenstore {}, console {}",
            dom.0,
            if store.is_some() { "connected" } else { "none" },
            if console.is_some() { "connected" } else { "none" }
        );
        self.guests.insert(dom.0, name.into());
        if self.cfg.vcons {
            self.vcons.add(self.xenstored.engine(), dom, name, 1);
        }
        if !disks.is_empty() {
            let have = self.devices.as_ref().map_or(&[][..], |d| &d.virtio.disks[..]);
            self.blk.add(self.xenstored.engine(), dom, name, disks, have);
        }
    }

    /// Gives `dom` (named `name`) the vifs its configuration lists (`vif = [...]`, entries
    /// already checked by the configuration parser), numbered from 0.
    pub fn add_vifs(&mut self, dom: DomId, name: &str, vifs: &[String]) {
        for (devid, entry) in vifs.iter().enumerate() {
            match crate::toolstack::vif::VifSpec::parse(entry) {
                Ok(spec) => self.net.add(self.xenstored.engine(), dom, name, devid as u32, &spec),
                Err(e) => println!("dom0: d{} ({name}): {e}", dom.0),
            }
        }
    }

    /// A domU is gone: forget its connections (the hypervisor already closed its ports and
    /// unmapped nothing of ours: our mappings of its pages keep them alive until dropped here).
    pub fn forget(&mut self, dom: DomId) {
        let Some(name) = self.guests.get(&dom.0).cloned() else { return };
        // Whatever it printed before it went is still in its rings: print that first.
        self.consoles.serve(dom.0, &name, &[], time::now_ns());
        self.vcons.serve(dom.0, &mut self.xenstored.local());
        self.guests.remove(&dom.0);
        self.consoles.disconnect(dom.0, &name);
        self.xenstored.disconnect(dom);
        self.vcons.disconnect(dom.0);
        self.blk.disconnect(dom.0, self.xenstored.engine());
        self.net.disconnect(dom, self.xenstored.engine());
        let xs = self.xenstored.engine();
        xs.domain_died(dom);
        let _ = xs.remove_domain_home(dom);
        println!("dom0: d{} ({name}) is gone", dom.0);
    }

    /// One round of work: every port that fired, then every guest's rings within budget,
    /// then dom0's own XenStore events and serial input. True if a back end has work left
    /// that needs another round before dom0 sleeps.
    pub fn round(&mut self) -> bool {
        let fired = events::take_queued();
        let now = time::now_ns();
        let mut more = false;
        for (&id, name) in &self.guests {
            self.xenstored.serve(id, name);
            self.consoles.serve(id, name, &fired, now);
            self.vcons.serve(id, &mut self.xenstored.local());
            let disks = self.devices.as_mut().map_or(&mut [][..], |d| &mut d.virtio.disks[..]);
            more |= self.blk.serve(id, &mut self.xenstored.local(), disks, &fired, now);
        }
        self.xenstored.flush_local_events();
        if !self.cfg.shell {
            let consoles = &mut self.consoles;
            self.serial.poll(|line| consoles.input_line(line));
        }
        let uplink = self.devices.as_mut().and_then(|d| d.virtio.nics.first_mut());
        more |= self.net.round(&mut self.xenstored.local(), uplink, &fired);
        if let Some(d) = &mut self.devices {
            d.round();
        }
        more
    }
}
