//! The domUs dom0's toolstack looks after, and what a user (or a test) asks of them: create
//! one from a configuration (in dom0's ramdisk archive, or a `domu=` the hypervisor's command
//! line names), destroy, pause, unpause, shut down, list, scheduling parameters; and, when a
//! domain shuts down (the hypervisor raises `VIRQ_DOM_EXC`), what its configuration says to
//! do: destroy it, build it again from its configuration (its console and XenStore connected
//! anew), or keep it for inspection. These are the functions the interactive shell calls.
//!
//! A guest that keeps crashing is not rebuilt forever: xl itself rebuilds as often as it is
//! asked, but xend refused to restart a domain that had been restarted less than 60 seconds
//! before ("restarting too fast"). We keep xend's guard with a little slack: within a
//! [`RESTART_WINDOW_NS`] window, [`MAX_RESTARTS`] rebuilds are allowed; the next shutdown that
//! asks for one destroys the domain instead, with a line saying why.
//!
//! The balloon (`mem-set`, `mem-max`) goes through XenStore as xl's does: the toolstack writes
//! `memory/static-max` and `memory/target` (KiB) in the domain's home when it builds it, and
//! moves `memory/target`; the guest's balloon driver gives frames back or takes them again.
//!
//! With `wait_for=<domid>` on dom0's command line, the other domUs (CPU hogs) are destroyed
//! once that one is gone.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::domctl::{
    GetDomainInfo, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING,
    XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWN_SHIFT,
};
use hypercall_abi::event_channel::VIRQ_DOM_EXC;
use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND};
use hypercall_abi::sysctl::BOOT_MODULE_NONE;
use hypercall_abi::{DomId, guest};
use pv_guest::{events, println, time};

use super::archive::Archive;
use super::config::{self, Action, DomainConfig, Image};
use super::{builder, ctl, memory, on_disk};
use crate::service::Services;

/// The window within which rebuilds of one domain are counted.
pub const RESTART_WINDOW_NS: u64 = 60_000_000_000;
/// Rebuilds allowed within the window.
pub const MAX_RESTARTS: usize = 5;

/// `VIRQ_DOM_EXC` events seen so far.
static DOM_EXC: AtomicU64 = AtomicU64::new(0);

/// Binds `VIRQ_DOM_EXC`, so [`Toolstack::update`] knows when to look again.
pub fn watch() {
    if let Ok(port) = guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(VIRQ_DOM_EXC), 0) {
        events::on(port, |_| {
            DOM_EXC.fetch_add(1, Ordering::SeqCst);
        });
        let _ = events::unmask(port);
    }
}

/// The domUs alive now (not dying).
pub fn live_domus() -> Vec<GetDomainInfo> {
    ctl::domains()
        .into_iter()
        .filter(|d| d.domain != DomId(0) && d.flags & XEN_DOMINF_DYING == 0)
        .collect()
}

/// A domain's name, which the hypervisor passes in getdomaininfo's handle (`d<id>` if none).
pub fn domain_name(d: &GetDomainInfo) -> String {
    let end = d.handle.iter().position(|&b| b == 0).unwrap_or(d.handle.len());
    match core::str::from_utf8(&d.handle[..end]) {
        Ok(n) if !n.is_empty() => n.into(),
        _ => format!("d{}", d.domain.0),
    }
}

/// The least memory target the shell accepts (a domain's boot layout needs more anyway).
pub const MIN_TARGET_KIB: u64 = 4 << 10;

/// A decimal KiB figure at `path`.
fn read_kib(svc: &mut Services, path: &str) -> Option<u64> {
    let v = svc.xs_read(path)?;
    core::str::from_utf8(&v).ok()?.trim_end_matches('\0').trim().parse().ok()
}

/// One line of `list`: what xl list shows.
#[derive(Clone, Debug)]
pub struct DomainSummary {
    pub id: DomId,
    pub name: String,
    pub mem_kib: u64,
    pub vcpus: u32,
    /// xl's state letters: r(unning) b(locked) p(aused) s(hutdown) c(rashed) d(ying).
    pub state: String,
    pub cpu_time_ns: u64,
}

fn state_letters(flags: u32) -> String {
    let reason = (flags >> XEN_DOMINF_SHUTDOWN_SHIFT) & 0xFF;
    let shut = flags & XEN_DOMINF_SHUTDOWN != 0;
    [
        (flags & XEN_DOMINF_RUNNING != 0, 'r'),
        (flags & XEN_DOMINF_BLOCKED != 0, 'b'),
        (flags & XEN_DOMINF_PAUSED != 0, 'p'),
        (shut && reason != SHUTDOWN_CRASH, 's'),
        (shut && reason == SHUTDOWN_CRASH, 'c'),
        (flags & XEN_DOMINF_DYING != 0, 'd'),
    ]
    .iter()
    .map(|&(on, c)| if on { c } else { '-' })
    .collect()
}

fn reason_name(reason: u32) -> &'static str {
    match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_SUSPEND => "suspend",
        SHUTDOWN_CRASH => "crash",
        _ => "watchdog",
    }
}

/// A domain this toolstack built.
struct Managed {
    cfg: DomainConfig,
    /// When it (under this name) was rebuilt by an `on_*=restart`, within the window.
    restarts: Vec<u64>,
    /// Shut down and kept (on_*=preserve): nothing more is done until it is destroyed.
    preserved: bool,
}

/// dom0's toolstack: the ramdisk archive it builds from, and the domains it built.
pub struct Toolstack {
    archive: Option<Archive<'static>>,
    managed: BTreeMap<u16, Managed>,
    seen_exc: u64,
    wait_for: Option<u16>,
}

impl Toolstack {
    /// Opens dom0's ramdisk as the archive of kernels and configurations (a ramdisk that is
    /// not one is reported and left unused).
    pub fn new(wait_for: Option<u16>) -> Self {
        let rd = memory::ramdisk();
        let archive = if rd.is_empty() {
            None
        } else {
            match Archive::open(rd) {
                Ok(a) => {
                    let files = a.entries().filter(|e| e.is_file()).count();
                    println!(
                        "dom0: ramdisk: an archive of {files} files ({} KiB)",
                        rd.len() / 1024
                    );
                    Some(a)
                }
                Err(e) => {
                    println!("dom0: ramdisk ({} KiB) is not a guest archive: {e}", rd.len() / 1024);
                    None
                }
            }
        };
        Toolstack { archive, managed: BTreeMap::new(), seen_exc: u64::MAX, wait_for }
    }

    /// The configuration file `file` (or `file.cfg`) of dom0's ramdisk, else of an archive on
    /// one of its disks, parsed.
    pub fn config(&self, svc: &mut Services, file: &str) -> Result<DomainConfig, String> {
        let names = [String::from(file), format!("{file}.cfg")];
        let in_ramdisk = self.archive.as_ref().and_then(|a| names.iter().find_map(|n| a.file(n)));
        let from_disk;
        let text = match in_ramdisk {
            Some(t) => t,
            None => {
                let disks = svc.disks();
                let mut found = None;
                for n in &names {
                    if let Some(hit) = on_disk::find(disks, n)? {
                        found = Some(hit);
                        break;
                    }
                }
                let (disk, at) = found.ok_or_else(|| {
                    format!("no configuration {file} in dom0's ramdisk or on its disks")
                })?;
                from_disk = on_disk::read_config(disks, disk, at)?;
                &from_disk[..]
            }
        };
        let text = core::str::from_utf8(text).map_err(|_| format!("{file} is not text"))?;
        config::parse(text).map_err(|e| e.to_string())
    }

    /// Builds a domain from `cfg`, connects its console and XenStore and lets it run.
    pub fn create(&mut self, svc: &mut Services, cfg: DomainConfig) -> Result<DomId, String> {
        let taken = self.managed.values().any(|m| m.cfg.name == cfg.name)
            || live_domus().iter().any(|d| domain_name(d) == cfg.name);
        if taken {
            return Err(format!("a domain named {} exists already", cfg.name));
        }
        let t0 = time::now_ns();
        let c = builder::build(self.archive.as_ref(), svc.disks(), &cfg)
            .map_err(|e| format!("{}: {e}", cfg.name))?;
        svc.adopt(c.dom, &cfg.name, &cfg.disks);
        svc.add_vifs(c.dom, &cfg.name, &cfg.vifs);
        let home = format!("/local/domain/{}", c.dom.0);
        for (node, kib) in [("static-max", cfg.maxmem_kib), ("target", cfg.memory_kib)] {
            let _ = svc.xs_write(&format!("{home}/memory/{node}"), format!("{kib}").as_bytes());
        }
        let _ = ctl::unpause(c.dom);
        println!(
            "dom0: d{} ({}) created: {} MiB, kernel {}{}, entry {:#x}, in {} ms",
            c.dom.0,
            cfg.name,
            cfg.memory_kib >> 10,
            cfg.kernel,
            cfg.ramdisk.as_ref().map_or(String::new(), |r| format!(", ramdisk {r}")),
            c.built.entry,
            (time::now_ns() - t0) / 1_000_000
        );
        self.managed.insert(c.dom.0, Managed { cfg, restarts: Vec::new(), preserved: false });
        Ok(c.dom)
    }

    /// [`config`](Self::config) then [`create`](Self::create).
    pub fn create_file(&mut self, svc: &mut Services, file: &str) -> Result<DomId, String> {
        let cfg = self.config(svc, file)?;
        self.create(svc, cfg)
    }

    /// Builds the domUs the hypervisor's command line names (`domu=`), from the boot modules
    /// it kept, in order; each failure is reported and the rest built.
    pub fn create_boot_domus(&mut self, svc: &mut Services) {
        let mut i = 0;
        while let Some(b) = ctl::boot_domu(i) {
            i += 1;
            let end = b.name.iter().position(|&c| c == 0).unwrap_or(b.name.len());
            let name = String::from_utf8_lossy(&b.name[..end]).into_owned();
            let mut cfg = DomainConfig::new(&name, Image::BootModule(b.kernel_module));
            if b.ramdisk_module != BOOT_MODULE_NONE {
                cfg.ramdisk = Some(Image::BootModule(b.ramdisk_module));
            }
            cfg.cmdline =
                ctl::boot_module_info(b.kernel_module).map(|(_, a)| a).unwrap_or_default();
            cfg.memory_kib = b.mem_bytes >> 10;
            cfg.maxmem_kib = cfg.memory_kib;
            (cfg.weight, cfg.cap) = (b.weight, b.cap);
            if let Err(e) = self.create(svc, cfg) {
                println!("dom0: cannot build domU {name}: {e}");
            }
        }
    }

    /// Destroys `dom`: its memory goes back once dom0 lets go of its rings, which happens here.
    pub fn destroy(&mut self, svc: &mut Services, dom: DomId) -> Result<(), String> {
        ctl::destroy(dom).map_err(|e| format!("d{}: {e:?}", dom.0))?;
        svc.forget(dom);
        self.managed.remove(&dom.0);
        ctl::wait_gone(dom);
        Ok(())
    }

    pub fn pause(&self, dom: DomId) -> Result<(), String> {
        ctl::pause(dom).map_err(|e| format!("d{}: {e:?}", dom.0))
    }

    pub fn unpause(&self, dom: DomId) -> Result<(), String> {
        ctl::unpause(dom).map_err(|e| format!("d{}: {e:?}", dom.0))
    }

    /// Shuts `dom` down with a `SHUTDOWN_*` reason, as if it had asked; its configuration's
    /// `on_*` action follows.
    pub fn shutdown(&self, dom: DomId, reason: u32) -> Result<(), String> {
        ctl::remote_shutdown(dom, reason).map_err(|e| format!("d{}: {e:?}", dom.0))
    }

    /// Asks `dom` to shut down (`how`: "poweroff" or "reboot") through its
    /// `control/shutdown` node, as xl does; the guest acknowledges by clearing the node and
    /// shuts itself down, and its configuration's `on_*` action follows.
    pub fn request_shutdown(
        &self,
        svc: &mut Services,
        dom: DomId,
        how: &str,
    ) -> Result<(), String> {
        ctl::domain_info(dom).map_err(|_| format!("no domain with id {}", dom.0))?;
        svc.xs_write(&format!("/local/domain/{}/control/shutdown", dom.0), how.as_bytes())
    }

    /// Moves `dom`'s balloon target to `kib` (at most its `memory/static-max`).
    pub fn mem_set(&self, svc: &mut Services, dom: DomId, kib: u64) -> Result<(), String> {
        let home = format!("/local/domain/{}", dom.0);
        let max = read_kib(svc, &format!("{home}/memory/static-max")).ok_or_else(|| {
            format!("d{} has no memory/static-max (not built by this toolstack)", dom.0)
        })?;
        if kib > max {
            return Err(format!(
                "{} MiB is above d{}'s maximum of {} MiB (mem-max raises it)",
                kib >> 10,
                dom.0,
                max >> 10
            ));
        }
        if kib < MIN_TARGET_KIB {
            return Err(format!(
                "{kib} KiB is below the least a domain keeps ({MIN_TARGET_KIB} KiB)"
            ));
        }
        svc.xs_write(&format!("{home}/memory/target"), format!("{kib}").as_bytes())
    }

    /// Sets `dom`'s memory ceiling to `kib` (not below its current target), in the hypervisor
    /// and in `memory/static-max`.
    pub fn mem_max(&mut self, svc: &mut Services, dom: DomId, kib: u64) -> Result<(), String> {
        let home = format!("/local/domain/{}", dom.0);
        let target = read_kib(svc, &format!("{home}/memory/target")).unwrap_or(0);
        if kib < target {
            return Err(format!(
                "{} MiB is below d{}'s memory target of {} MiB (mem-set lowers it first)",
                kib >> 10,
                dom.0,
                target >> 10
            ));
        }
        ctl::max_mem(dom, kib).map_err(|e| format!("d{}: max_mem: {e:?}", dom.0))?;
        if let Some(m) = self.managed.get_mut(&dom.0) {
            m.cfg.maxmem_kib = kib;
        }
        svc.xs_write(&format!("{home}/memory/static-max"), format!("{kib}").as_bytes())
    }

    /// (weight, cap) of `dom`.
    pub fn sched_get(&self, dom: DomId) -> Result<(u16, u16), String> {
        ctl::sched_get(dom).map_err(|e| format!("d{}: {e:?}", dom.0))
    }

    pub fn sched_set(&self, dom: DomId, weight: u16, cap: u16) -> Result<(), String> {
        ctl::sched_set(dom, weight, cap).map_err(|e| format!("d{}: {e:?}", dom.0))
    }

    /// Every domain, dom0 included, as xl list shows them.
    pub fn list(&self) -> Vec<DomainSummary> {
        ctl::domains()
            .iter()
            .map(|d| DomainSummary {
                id: d.domain,
                name: if d.domain == DomId(0) { "Domain-0".into() } else { domain_name(d) },
                mem_kib: d.tot_pages * 4,
                vcpus: d.nr_online_vcpus,
                state: state_letters(d.flags),
                cpu_time_ns: d.cpu_time,
            })
            .collect()
    }

    /// If a domain appeared or went since the last call (and on the first), acts on the
    /// managed domains that shut down, forgets the gone ones, and returns how many domUs are
    /// alive; None if nothing changed.
    pub fn update(&mut self, svc: &mut Services) -> Option<usize> {
        let exc = DOM_EXC.load(Ordering::SeqCst);
        if exc == self.seen_exc {
            return None;
        }
        self.seen_exc = exc;
        let all = ctl::domains();
        for d in &all {
            let Some(m) = self.managed.get(&d.domain.0) else { continue };
            if d.flags & XEN_DOMINF_SHUTDOWN == 0 || d.flags & XEN_DOMINF_DYING != 0 || m.preserved
            {
                continue;
            }
            let reason = (d.flags >> XEN_DOMINF_SHUTDOWN_SHIFT) & 0xFF;
            self.on_shutdown(svc, d.domain, reason);
        }
        let live = live_domus();
        let gone: Vec<u16> = svc
            .guest_ids()
            .into_iter()
            .filter(|id| !live.iter().any(|d| d.domain.0 == *id))
            .collect();
        for id in gone {
            svc.forget(DomId(id));
            self.managed.remove(&id);
        }
        if let Some(id) = self.wait_for
            && !live.iter().any(|d| d.domain.0 == id)
        {
            for d in &live {
                let _ = self.destroy(svc, d.domain);
            }
        }
        Some(live_domus().len())
    }

    /// What the configuration says to do now that `dom` shut down for `reason`.
    fn on_shutdown(&mut self, svc: &mut Services, dom: DomId, reason: u32) {
        let Some(m) = self.managed.get_mut(&dom.0) else { return };
        let action = match reason {
            SHUTDOWN_POWEROFF => m.cfg.on_poweroff,
            SHUTDOWN_REBOOT => m.cfg.on_reboot,
            SHUTDOWN_SUSPEND => Action::Preserve,
            _ => m.cfg.on_crash,
        };
        let how = reason_name(reason);
        let name = m.cfg.name.clone();
        match action {
            Action::Preserve => {
                m.preserved = true;
                println!("dom0: d{} ({name}) shut down ({how}): preserved for inspection", dom.0);
            }
            Action::Destroy => {
                let _ = self.destroy(svc, dom);
            }
            Action::Restart => {
                let now = time::now_ns();
                let mut restarts = core::mem::take(&mut m.restarts);
                restarts.retain(|&t| now.saturating_sub(t) < RESTART_WINDOW_NS);
                let cfg = m.cfg.clone();
                let _ = self.destroy(svc, dom);
                if restarts.len() >= MAX_RESTARTS {
                    println!(
                        "dom0: {name} restarting too fast ({} rebuilds in {} s): destroyed, not rebuilt",
                        restarts.len(),
                        RESTART_WINDOW_NS / 1_000_000_000
                    );
                    return;
                }
                restarts.push(now);
                match self.create(svc, cfg) {
                    Ok(new) => {
                        if let Some(m) = self.managed.get_mut(&new.0) {
                            m.restarts = restarts;
                        }
                        println!("dom0: domain {} ({name}) rebuilt after its {how}", new.0)
                    }
                    Err(e) => println!("dom0: cannot rebuild {name} after its {how}: {e}"),
                }
            }
        }
    }
}
