//! The hypervisor's options, from its command line (Xen's names where Xen has the option):
//! `loglvl=`, `dom0_mem=`, `dom0_weight=`, `smep`, `smap`, `sched_slice_ms=`, `floor_probe`,
//! `domu=` for each domU to build at boot, `domu_ramdisk=` to give one a ramdisk, and
//! `force_features=` for bringing up kernels that require what is not there yet, `hctrace=<n>`
//! to log the next n hypercalls (bringing a kernel up). A malformed
//! value keeps the default; the line itself is kept for `xen_version(XENVER_commandline)`.

use alloc::vec::Vec;

use log::LevelFilter;

use super::cmdline;
use crate::console::logging;
use crate::sched::credit::DEFAULT_SLICE_NS;

/// A domU the hypervisor builds at boot: `domu=<name>:<module>[:<mem>[:<weight>[:<cap>]]]`,
/// and its ramdisk, `domu_ramdisk=<name>:<module>`.
#[derive(Clone, Debug)]
pub struct DomuSpec {
    pub name: alloc::string::String,
    pub module: usize,
    pub mem: u64,
    pub weight: u32,
    pub cap: u32,
    pub ramdisk: Option<usize>,
}

/// Hypervisor options from its command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub loglvl: LevelFilter,
    pub dom0_mem: u64,
    pub dom0_weight: u32,
    pub smep: bool,
    pub smap: bool,
    pub slice_ns: u64,
    /// `floor_probe`: enable the syscall floor probe (benchmarks only; see `entry.rs`).
    pub floor_probe: bool,
    pub domus: Vec<DomuSpec>,
    /// `force_features=<name>[,<name>...]`: build kernels that require these `XENFEAT_*`
    /// features (by their FEATURES-note names) although the hypervisor does not provide them
    /// yet. For bringing a kernel up only: it will fail where it relies on them.
    pub force_features: Vec<alloc::string::String>,
    /// `hctrace=<n>`: log the first `n` hypercalls (any domain) with their arguments and
    /// results, for bringing up a kernel that stops without a word.
    pub hctrace: u64,
}

fn parse_domu(v: &str) -> Option<DomuSpec> {
    let mut it = v.split(':');
    let name = it.next().filter(|n| !n.is_empty())?;
    let module = cmdline::parse_u64(it.next()?)? as usize;
    let mem = it.next().map_or(Some(32 << 20), cmdline::parse_size)?;
    let weight = it.next().map_or(Some(256), cmdline::parse_u64)? as u32;
    let cap = it.next().map_or(Some(0), cmdline::parse_u64)? as u32;
    Some(DomuSpec { name: name.into(), module, mem, weight, cap, ramdisk: None })
}

/// `<name>:<module>` of a `domu_ramdisk=`.
fn parse_domu_ramdisk(v: &str) -> Option<(&str, usize)> {
    let (name, module) = v.split_once(':')?;
    Some((name, cmdline::parse_u64(module)? as usize))
}

pub fn parse_options(line: &str) -> Options {
    let mut o = Options {
        loglvl: LevelFilter::Info,
        dom0_mem: 256 << 20,
        dom0_weight: 256,
        smep: true,
        smap: true,
        slice_ns: DEFAULT_SLICE_NS,
        floor_probe: false,
        domus: Vec::new(),
        force_features: Vec::new(),
        hctrace: 0,
    };
    // Ramdisks attach to their domU by name, wherever on the line either comes.
    let mut ramdisks = Vec::new();
    for opt in cmdline::options(line) {
        match (opt.key, opt.value) {
            ("loglvl", Some(v)) => o.loglvl = logging::parse_level(v).unwrap_or(o.loglvl),
            ("dom0_mem", Some(v)) => o.dom0_mem = cmdline::parse_size(v).unwrap_or(o.dom0_mem),
            ("dom0_weight", Some(v)) => {
                o.dom0_weight = cmdline::parse_u64(v).map_or(o.dom0_weight, |w| w as u32)
            }
            ("smep", v) => o.smep = cmdline::parse_bool(v).unwrap_or(o.smep),
            ("smap", v) => o.smap = cmdline::parse_bool(v).unwrap_or(o.smap),
            ("floor_probe", v) => o.floor_probe = cmdline::parse_bool(v).unwrap_or(true),
            ("sched_slice_ms", Some(v)) => {
                o.slice_ns =
                    cmdline::parse_u64(v).map_or(o.slice_ns, |ms| ms.clamp(1, 1000) * 1_000_000)
            }
            ("domu", Some(v)) => match parse_domu(v) {
                Some(d) => o.domus.push(d),
                None => log::warn!(
                    "ignoring malformed domu={v} (want name:module[:mem[:weight[:cap]]])"
                ),
            },
            ("domu_ramdisk", Some(v)) => match parse_domu_ramdisk(v) {
                Some(r) => ramdisks.push(r),
                None => log::warn!("ignoring malformed domu_ramdisk={v} (want name:module)"),
            },
            ("hctrace", Some(v)) => o.hctrace = cmdline::parse_u64(v).unwrap_or(0),
            ("force_features", Some(v)) => {
                o.force_features.extend(v.split(',').filter(|f| !f.is_empty()).map(Into::into))
            }
            _ => {}
        }
    }
    for (name, module) in ramdisks {
        match o.domus.iter_mut().find(|d| d.name == name) {
            Some(d) => d.ramdisk = Some(module),
            None => log::warn!("ignoring domu_ramdisk={name}:{module}: no domu={name}"),
        }
    }
    o
}

/// The hypervisor's command line (without the image name), kept once at boot.
pub(super) static CMDLINE: spin::Once<alloc::string::String> = spin::Once::new();

/// The hypervisor's command line (without the image name).
pub fn command_line() -> &'static str {
    CMDLINE.get().map_or("", |s| s.as_str())
}
