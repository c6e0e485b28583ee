//! What each shell command does, with dom0's toolstack and services, and the shell's share of
//! dom0's serving loop ([`Shell::poll`]): the bytes typed go to the line editor, or, while a
//! guest's console is attached, to that guest until Ctrl-] (as `xl console`). Every failure is
//! one `error: ...` line and the shell carries on; a command never leaves a domain or a frame
//! behind (the toolstack undoes a half-built domain).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::domctl::GetDomainInfo;
use hypercall_abi::{DomId, guest};
use pv_guest::{print, println, time};

use super::command::{self, Command, DomRef, HELP};
use super::editor::Editor;
use crate::drivers::serial;
use crate::service::Services;
use crate::toolstack::domains::{self, DomainSummary};
use crate::toolstack::{Toolstack, ctl};

/// What a terminal sends for Ctrl-] (xl console's escape).
const DETACH: u8 = 0x1d;
/// How long a guest has to acknowledge a `control/shutdown` request before the shell says so.
const ACK_TIMEOUT_NS: u64 = 5_000_000_000;
/// Most of the hypervisor's log one `dmesg` prints.
const DMESG_MAX: usize = 16 << 10;

/// A shutdown or reboot asked of a guest, not yet acknowledged.
struct Request {
    dom: DomId,
    name: String,
    how: &'static str,
    deadline_ns: u64,
}

/// The shell's state.
pub struct Shell {
    editor: Editor,
    /// The guest whose console the serial line is attached to.
    attached: Option<(DomId, String)>,
    requests: Vec<Request>,
    /// `poweroff` was typed.
    pub is_done: bool,
}

impl Default for Shell {
    fn default() -> Self {
        Self::new()
    }
}

fn prompt() {
    print!("xl> ");
}

fn free_frames() -> u64 {
    ctl::physinfo().map(|p| p.free_pages).unwrap_or(0)
}

/// `ns` as seconds with one decimal.
fn secs(ns: u64) -> String {
    format!("{}.{}", ns / 1_000_000_000, ns / 100_000_000 % 10)
}

impl Shell {
    pub fn new() -> Self {
        Shell { editor: Editor::new(), attached: None, requests: Vec::new(), is_done: false }
    }

    /// Says the shell is there and shows the first prompt.
    pub fn start(&self) {
        println!("dom0: shell ready (help lists the commands)");
        prompt();
    }

    /// One look at the serial line and at what the shell waits for.
    pub fn poll(&mut self, ts: &mut Toolstack, svc: &mut Services) {
        if let Some((dom, name)) = &self.attached
            && svc.consoles().attached() != Some(dom.0)
        {
            println!("\r\ndom0: d{} ({name}) is gone; back to the shell", dom.0);
            self.attached = None;
            prompt();
        }
        self.check_requests(svc);
        let mut buf = [0u8; 64];
        let n = serial::read_raw(&mut buf);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if let Some((dom, name)) = self.attached.clone() {
                let end = rest.iter().position(|&b| b == DETACH);
                svc.consoles().send_input(&rest[..end.unwrap_or(rest.len())]);
                let Some(end) = end else { break };
                rest = &rest[end + 1..];
                let names = svc.names().clone();
                svc.consoles().detach(&names);
                self.attached = None;
                println!("\r\ndom0: detached from d{} ({name})", dom.0);
                prompt();
                continue;
            }
            let mut echo = Vec::new();
            let line = self.editor.feed(rest[0], &mut echo);
            rest = &rest[1..];
            if !echo.is_empty() {
                print!("{}", String::from_utf8_lossy(&echo));
            }
            if let Some(line) = line {
                self.execute(&line, ts, svc);
                if self.attached.is_none() && !self.is_done {
                    prompt();
                }
            }
        }
    }

    /// Parses and runs one line.
    pub fn execute(&mut self, line: &str, ts: &mut Toolstack, svc: &mut Services) {
        let r = command::parse(line).and_then(|c| self.run(c, ts, svc));
        if let Err(e) = r {
            println!("error: {e}");
        }
    }

    /// Acknowledged requests are dropped; one not acknowledged in time is reported.
    fn check_requests(&mut self, svc: &mut Services) {
        let now = time::now_ns();
        self.requests.retain(|r| {
            let node = svc.xs_read(&format!("/local/domain/{}/control/shutdown", r.dom.0));
            let pending = node.is_some_and(|v| v.starts_with(r.how.as_bytes()));
            if pending && now > r.deadline_ns {
                println!(
                    "dom0: d{} ({}) did not acknowledge the {} request in {} s (no PV control driver?); destroy ends it",
                    r.dom.0,
                    r.name,
                    r.how,
                    ACK_TIMEOUT_NS / 1_000_000_000
                );
                return false;
            }
            pending
        });
    }

    /// The domain `r` names (dom0 included).
    fn resolve(ts: &Toolstack, r: &DomRef) -> Result<DomainSummary, String> {
        let list = ts.list();
        let found = match r {
            DomRef::Id(id) => list.into_iter().find(|d| d.id.0 == *id),
            DomRef::Name(n) => list.into_iter().find(|d| d.name == *n),
        };
        found.ok_or_else(|| match r {
            DomRef::Id(id) => format!("no domain with id {id}"),
            DomRef::Name(n) => format!("no domain named {n}"),
        })
    }

    /// The domU `r` names: dom0 is refused.
    fn domu(ts: &Toolstack, r: &DomRef, what: &str) -> Result<(DomId, String), String> {
        let d = Self::resolve(ts, r)?;
        if d.id == DomId(0) {
            return Err(format!("cannot {what} Domain-0 (this dom0)"));
        }
        Ok((d.id, d.name))
    }

    fn run(&mut self, c: Command, ts: &mut Toolstack, svc: &mut Services) -> Result<(), String> {
        let is_reboot = matches!(c, Command::Reboot(_));
        match c {
            Command::Nothing => {}
            Command::Help => {
                for (usage, what) in HELP {
                    println!("  {usage:<50} {what}");
                }
            }
            Command::Create(file) => {
                ts.create_file(svc, &file).map_err(|e| format!("create {file}: {e}"))?;
            }
            Command::List => list(ts),
            Command::Info => info(ts),
            Command::Console(r) => {
                let (dom, name) = Self::domu(ts, &r, "attach to")?;
                if !svc.consoles().is_connected(dom.0) {
                    return Err(format!("d{} ({name}) has no console dom0 reaches", dom.0));
                }
                println!("dom0: attached to d{} ({name}); Ctrl-] detaches", dom.0);
                svc.consoles().attach(dom.0);
                self.attached = Some((dom, name));
            }
            Command::Pause(r) => {
                let (dom, name) = Self::domu(ts, &r, "pause")?;
                ts.pause(dom)?;
                println!("d{} ({name}) paused", dom.0);
            }
            Command::Unpause(r) => {
                let (dom, name) = Self::domu(ts, &r, "unpause")?;
                ts.unpause(dom)?;
                println!("d{} ({name}) unpaused", dom.0);
            }
            Command::Shutdown(r) | Command::Reboot(r) => {
                let how = if is_reboot { "reboot" } else { "poweroff" };
                let (dom, name) = Self::domu(ts, &r, "shut down")?;
                ts.request_shutdown(svc, dom, how)?;
                println!("d{} ({name}): {how} requested (control/shutdown)", dom.0);
                let deadline_ns = time::now_ns() + ACK_TIMEOUT_NS;
                self.requests.push(Request { dom, name, how, deadline_ns });
            }
            Command::Destroy(r) => {
                let (dom, name) = Self::domu(ts, &r, "destroy")?;
                let before = free_frames();
                ts.destroy(svc, dom)?;
                println!(
                    "d{} ({name}) destroyed; free frames {before} -> {}",
                    dom.0,
                    free_frames()
                );
            }
            Command::MemSet(r, kib) => {
                let (dom, name) = Self::domu(ts, &r, "balloon")?;
                ts.mem_set(svc, dom, kib)?;
                println!("d{} ({name}): memory target {kib} KiB", dom.0);
            }
            Command::MemMax(r, kib) => {
                let (dom, name) = Self::domu(ts, &r, "limit")?;
                ts.mem_max(svc, dom, kib)?;
                println!("d{} ({name}): memory maximum {kib} KiB", dom.0);
            }
            Command::SchedCredit { dom, weight, cap } => sched_credit(ts, dom, weight, cap)?,
            Command::VcpuList(r) => {
                let only = r.map(|r| Self::resolve(ts, &r)).transpose()?;
                vcpu_list(only.map(|d| d.id));
            }
            Command::Dmesg { clear } => dmesg(clear)?,
            Command::Top => top(ts, svc),
            Command::Poweroff => {
                println!("dom0: powering off at the shell's request");
                self.is_done = true;
            }
        }
        Ok(())
    }
}

fn list(ts: &Toolstack) {
    println!(
        "{:<20} {:>5} {:>7} {:>5} {:>6} {:>9}",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    );
    for d in ts.list() {
        println!(
            "{:<20} {:>5} {:>7} {:>5} {:>6} {:>9}",
            d.name,
            d.id.0,
            d.mem_kib >> 10,
            d.vcpus,
            d.state,
            secs(d.cpu_time_ns)
        );
    }
}

fn info(ts: &Toolstack) {
    let (major, minor) = guest::version().unwrap_or((0, 0));
    let p = ctl::physinfo().unwrap_or_default();
    let rows: [(&str, String); 8] = [
        ("host", "xen-core".into()),
        ("xen_version", format!("{major}.{minor}")),
        ("nr_cpus", format!("{}", p.nr_cpus)),
        ("cpu_mhz", format!("{}", p.cpu_khz / 1000)),
        ("total_memory", format!("{}", p.total_pages >> 8)),
        ("free_memory", format!("{}", p.free_pages >> 8)),
        ("free_frames", format!("{}", p.free_pages)),
        ("nr_domains", format!("{}", ts.list().len())),
    ];
    for (k, v) in rows {
        println!("{k:<23}: {v}");
    }
}

fn sched_credit(
    ts: &Toolstack,
    dom: Option<DomRef>,
    weight: Option<u16>,
    cap: Option<u16>,
) -> Result<(), String> {
    let only = dom.map(|r| Shell::resolve(ts, &r)).transpose()?;
    if let Some(d) = &only
        && (weight.is_some() || cap.is_some())
    {
        let (w0, c0) = ts.sched_get(d.id)?;
        ts.sched_set(d.id, weight.unwrap_or(w0), cap.unwrap_or(c0))?;
    }
    println!("{:<20} {:>5} {:>6} {:>4}", "Name", "ID", "Weight", "Cap");
    for d in ts.list().into_iter().filter(|d| only.as_ref().is_none_or(|o| o.id == d.id)) {
        let (w, c) = ts.sched_get(d.id)?;
        println!("{:<20} {:>5} {:>6} {:>4}", d.name, d.id.0, w, c);
    }
    Ok(())
}

/// One vCPU per domain runs on the one CPU; its state and time come from getdomaininfo.
fn vcpu_list(only: Option<DomId>) {
    use hypercall_abi::domctl::{XEN_DOMINF_BLOCKED, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING};
    println!(
        "{:<20} {:>5} {:>5} {:>4} {:>6} {:>9}  Affinity (Hard / Soft)",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)"
    );
    for d in ctl::domains().iter().filter(|d| only.is_none_or(|o| o == d.domain)) {
        let state = [
            (d.flags & XEN_DOMINF_RUNNING != 0, 'r'),
            (d.flags & XEN_DOMINF_BLOCKED != 0, 'b'),
            (d.flags & XEN_DOMINF_PAUSED != 0, 'p'),
        ]
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect::<String>();
        for v in 0..d.nr_online_vcpus {
            println!(
                "{:<20} {:>5} {:>5} {:>4} {:>6} {:>9}  all / all",
                name_of(d),
                d.domain.0,
                v,
                0,
                state,
                secs(d.cpu_time)
            );
        }
    }
}

fn name_of(d: &GetDomainInfo) -> String {
    if d.domain == DomId(0) { "Domain-0".into() } else { domains::domain_name(d) }
}

/// The hypervisor's log ring, read in pieces (then cleared if asked).
fn dmesg(clear: bool) -> Result<(), String> {
    let mut buf = alloc::vec![0u8; 1024];
    let mut text = Vec::new();
    let mut at = None;
    while text.len() < DMESG_MAX {
        let (n, next) =
            ctl::readconsole(at, &mut buf, false).map_err(|e| format!("readconsole: {e:?}"))?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        at = Some(next);
    }
    if clear {
        ctl::readconsole(None, &mut [], true).map_err(|e| format!("readconsole: {e:?}"))?;
    }
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        println!("{}", String::from_utf8_lossy(line).trim_end_matches('\r'));
    }
    Ok(())
}

/// Per domain over one second (dom0 keeps serving meanwhile): state, CPU %, memory.
fn top(ts: &mut Toolstack, svc: &mut Services) {
    let before = ctl::domains();
    let t0 = time::now_ns();
    while time::now_ns() < t0 + 1_000_000_000 {
        ts.update(svc);
        svc.round();
        let _ = guest::set_timer_op(time::now_ns() + 20_000_000);
        pv_guest::events::wait();
    }
    let wall = (time::now_ns() - t0).max(1);
    let total = ctl::physinfo().map(|p| p.total_pages).unwrap_or(1).max(1);
    println!(
        "{:<20} {:>6} {:>9} {:>6} {:>9} {:>6} {:>5}",
        "NAME", "STATE", "CPU(sec)", "CPU(%)", "MEM(k)", "MEM(%)", "VCPUS"
    );
    for d in ts.list() {
        let used = before
            .iter()
            .find(|b| b.domain == d.id)
            .map_or(0, |b| d.cpu_time_ns.saturating_sub(b.cpu_time));
        println!(
            "{:<20} {:>6} {:>9} {:>6} {:>9} {:>6} {:>5}",
            d.name,
            d.state,
            d.cpu_time_ns / 1_000_000_000,
            used * 100 / wall,
            d.mem_kib,
            d.mem_kib / 4 * 100 / total,
            d.vcpus
        );
    }
}
