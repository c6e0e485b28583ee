//! The shell's commands as typed, parsed into [`Command`]: the words `xl` users know, with
//! xl's argument forms (a domain by name or id; memory sizes in MiB unless suffixed with
//! `b`, `k`, `m`, `g` or `t`, as `xl mem-set` reads them; `sched-credit -d <dom> -w <weight>
//! -c <cap>`). A malformed command is one error line saying what was wrong and how to write it.
//!
//! Hardware-free and host-tested; `shell::run` carries the commands out.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A domain as the user named it: a number is an id, anything else a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomRef {
    Id(u16),
    Name(String),
}

impl DomRef {
    pub fn parse(word: &str) -> DomRef {
        match word.parse::<u16>() {
            Ok(id) => DomRef::Id(id),
            Err(_) => DomRef::Name(word.into()),
        }
    }
}

impl core::fmt::Display for DomRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DomRef::Id(id) => write!(f, "{id}"),
            DomRef::Name(n) => write!(f, "{n}"),
        }
    }
}

/// One command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// An empty line: nothing to do.
    Nothing,
    Help,
    /// `create <cfg>`: a configuration file of dom0's ramdisk.
    Create(String),
    List,
    Info,
    Console(DomRef),
    Pause(DomRef),
    Unpause(DomRef),
    Shutdown(DomRef),
    Reboot(DomRef),
    Destroy(DomRef),
    /// `mem-set <dom> <size>`: the balloon target, in KiB.
    MemSet(DomRef, u64),
    /// `mem-max <dom> <size>`: the ceiling, in KiB.
    MemMax(DomRef, u64),
    /// `sched-credit [-d <dom>] [-w <weight>] [-c <cap>]`: show all, show one, or set.
    SchedCredit {
        dom: Option<DomRef>,
        weight: Option<u16>,
        cap: Option<u16>,
    },
    VcpuList(Option<DomRef>),
    /// `dmesg [-c]`: the hypervisor's log (and clear it).
    Dmesg {
        clear: bool,
    },
    Top,
    /// Power the machine off (dom0's own: xl has no such command, a dom0 would `poweroff`).
    Poweroff,
}

/// One line per command for `help`: (usage, what it does).
pub const HELP: &[(&str, &str)] = &[
    ("create <cfg>", "build a domain from a configuration in dom0's ramdisk or on its disks"),
    ("list", "domains: name, id, memory, vCPUs, state, CPU time"),
    ("info", "the host: CPUs, memory, hypervisor version"),
    ("console <dom>", "attach to a domain's console (Ctrl-] detaches)"),
    ("pause <dom>", "stop a domain's vCPUs"),
    ("unpause <dom>", "let them run again"),
    ("shutdown <dom>", "ask a domain to power off (control/shutdown)"),
    ("reboot <dom>", "ask a domain to reboot (control/shutdown)"),
    ("destroy <dom>", "end a domain at once; its memory comes back"),
    ("mem-set <dom> <size>", "balloon target (memory/target); size in MiB or with b/k/m/g"),
    ("mem-max <dom> <size>", "memory ceiling"),
    ("sched-credit [-d <dom>] [-w <weight>] [-c <cap>]", "show or set credit weight and cap"),
    ("vcpu-list [<dom>]", "vCPUs: where they run, state, time"),
    ("dmesg [-c]", "the hypervisor's log (-c: and clear it)"),
    ("top", "per domain over one second: state, CPU %, memory"),
    ("poweroff", "power the machine off"),
    ("help", "this list"),
];

/// A size as `xl mem-set` reads it, in KiB: a number of MiB, or with a unit suffix.
pub fn parse_mem_kib(s: &str) -> Result<u64, String> {
    let bad = || format!("bad memory size {s:?} (a number of MiB, or with b/k/m/g/t: 512m)");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let kib = match unit.to_ascii_lowercase().as_str() {
        "b" => n / 1024,
        "k" => n,
        "" | "m" => n.checked_mul(1 << 10).ok_or_else(bad)?,
        "g" => n.checked_mul(1 << 20).ok_or_else(bad)?,
        "t" => n.checked_mul(1 << 30).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(kib)
}

fn usage(cmd: &str) -> String {
    let u = HELP.iter().find(|(u, _)| u.split(' ').next() == Some(cmd)).map_or(cmd, |(u, _)| u);
    format!("usage: {u}")
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some((&cmd, args)) = words.split_first() else { return Ok(Command::Nothing) };
    let one_dom = |f: fn(DomRef) -> Command| match args {
        [d] => Ok(f(DomRef::parse(d))),
        _ => Err(usage(cmd)),
    };
    let none = |c: Command| if args.is_empty() { Ok(c) } else { Err(usage(cmd)) };
    match cmd {
        "help" | "?" => Ok(Command::Help),
        "create" => match args {
            [f] => Ok(Command::Create(f.to_string())),
            _ => Err(usage(cmd)),
        },
        "list" => none(Command::List),
        "info" => none(Command::Info),
        "top" => none(Command::Top),
        "poweroff" => none(Command::Poweroff),
        "console" => one_dom(Command::Console),
        "pause" => one_dom(Command::Pause),
        "unpause" => one_dom(Command::Unpause),
        "shutdown" => one_dom(Command::Shutdown),
        "reboot" => one_dom(Command::Reboot),
        "destroy" => one_dom(Command::Destroy),
        "mem-set" | "mem-max" => match args {
            [d, size] => {
                let kib = parse_mem_kib(size)?;
                let d = DomRef::parse(d);
                Ok(if cmd == "mem-set" { Command::MemSet(d, kib) } else { Command::MemMax(d, kib) })
            }
            _ => Err(usage(cmd)),
        },
        "vcpu-list" => match args {
            [] => Ok(Command::VcpuList(None)),
            [d] => Ok(Command::VcpuList(Some(DomRef::parse(d)))),
            _ => Err(usage(cmd)),
        },
        "dmesg" => match args {
            [] => Ok(Command::Dmesg { clear: false }),
            ["-c"] => Ok(Command::Dmesg { clear: true }),
            _ => Err(usage(cmd)),
        },
        "sched-credit" => parse_sched_credit(args),
        _ => Err(format!("unknown command {cmd:?} (help lists them)")),
    }
}

fn parse_sched_credit(args: &[&str]) -> Result<Command, String> {
    let (mut dom, mut weight, mut cap) = (None, None, None);
    let mut it = args.iter();
    while let Some(&flag) = it.next() {
        let value =
            it.next().ok_or_else(|| format!("{flag} needs a value; {}", usage("sched-credit")))?;
        match flag {
            "-d" | "--domain" => dom = Some(DomRef::parse(value)),
            "-w" | "--weight" => match value.parse::<u16>() {
                Ok(w) if w >= 1 => weight = Some(w),
                _ => return Err(format!("bad weight {value:?} (1 to 65535)")),
            },
            "-c" | "--cap" => match value.parse::<u16>() {
                Ok(c) if c < u16::MAX => cap = Some(c),
                _ => return Err(format!("bad cap {value:?} (percent of a CPU, 0: none)")),
            },
            _ => return Err(usage("sched-credit")),
        }
    }
    if dom.is_none() && (weight.is_some() || cap.is_some()) {
        return Err(format!("setting needs a domain; {}", usage("sched-credit")));
    }
    Ok(Command::SchedCredit { dom, weight, cap })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_domains_by_name_or_id() {
        assert_eq!(parse("  "), Ok(Command::Nothing));
        assert_eq!(parse("list"), Ok(Command::List));
        assert_eq!(parse("create ticker.cfg"), Ok(Command::Create("ticker.cfg".into())));
        assert_eq!(parse("pause 3"), Ok(Command::Pause(DomRef::Id(3))));
        assert_eq!(parse("console  web "), Ok(Command::Console(DomRef::Name("web".into()))));
        assert_eq!(parse("vcpu-list"), Ok(Command::VcpuList(None)));
        assert_eq!(parse("dmesg -c"), Ok(Command::Dmesg { clear: true }));
        // A number too big for an id is a name (which then names no domain).
        assert_eq!(parse("destroy 70000"), Ok(Command::Destroy(DomRef::Name("70000".into()))));
    }

    #[test]
    fn wrong_arity_and_unknown_commands_are_one_line_errors() {
        assert_eq!(parse("pause"), Err("usage: pause <dom>".into()));
        assert_eq!(parse("list all"), Err("usage: list".into()));
        assert_eq!(parse("create a b"), Err("usage: create <cfg>".into()));
        assert_eq!(parse("mem-set 1"), Err("usage: mem-set <dom> <size>".into()));
        let e = parse("frobnicate 1").unwrap_err();
        assert!(e.contains("unknown command \"frobnicate\""), "{e}");
    }

    #[test]
    fn memory_sizes_read_as_xl_reads_them() {
        assert_eq!(parse_mem_kib("64"), Ok(64 << 10));
        assert_eq!(parse_mem_kib("64m"), Ok(64 << 10));
        assert_eq!(parse_mem_kib("16384k"), Ok(16384));
        assert_eq!(parse_mem_kib("1G"), Ok(1 << 20));
        assert_eq!(parse_mem_kib("1048576b"), Ok(1024));
        for bad in ["", "m", "12x", "-5", "1.5g", "99999999999999999999t", "20000000000000t"] {
            assert!(parse_mem_kib(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("mem-set ticker 24m"),
            Ok(Command::MemSet(DomRef::Name("ticker".into()), 24 << 10))
        );
        assert!(parse("mem-max 1 lots").unwrap_err().starts_with("bad memory size"));
    }

    #[test]
    fn sched_credit_shows_or_sets() {
        let show = |dom| Ok(Command::SchedCredit { dom, weight: None, cap: None });
        assert_eq!(parse("sched-credit"), show(None));
        assert_eq!(parse("sched-credit -d 2"), show(Some(DomRef::Id(2))));
        assert_eq!(
            parse("sched-credit -d a -w 512 -c 50"),
            Ok(Command::SchedCredit {
                dom: Some(DomRef::Name("a".into())),
                weight: Some(512),
                cap: Some(50)
            })
        );
        assert!(parse("sched-credit -w 512").unwrap_err().contains("needs a domain"));
        assert!(parse("sched-credit -d 1 -w 0").unwrap_err().contains("bad weight"));
        assert!(parse("sched-credit -d 1 -w 70000").unwrap_err().contains("bad weight"));
        assert!(parse("sched-credit -d 1 -c").unwrap_err().contains("-c needs a value"));
        assert!(parse("sched-credit -x 1").unwrap_err().starts_with("usage"));
    }

    #[test]
    fn every_command_has_help() {
        for (u, _) in HELP {
            let cmd = u.split(' ').next().unwrap();
            assert_ne!(parse(cmd).err().as_deref().map(|e| e.starts_with("unknown")), Some(true));
        }
    }
}
