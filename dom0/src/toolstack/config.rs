//! Domain configuration files: the subset of Xen's `xl.cfg` the toolstack builds from.
//!
//! A file is `key = value` lines; `#` starts a comment; a value is a quoted string (`"..."` or
//! `'...'`), a number, or a list of strings `[ "a", "b" ]` that may span lines; a line may end
//! with `;`. Keys, with xl's meanings and defaults:
//! - `name` (required), `kernel` (required), `ramdisk`: images, named by their path in dom0's
//!   ramdisk archive;
//! - `cmdline`, or `extra` (the same here: this toolstack adds no `root=`);
//! - `memory` (MiB, default 128), `maxmem` (MiB, default `memory`; not below it);
//! - `vcpus` (default 1: one vCPU per domain is all the hypervisor runs; more is refused);
//! - `cpu_weight` (default 256), `cap` (percent of a CPU, default 0: none);
//! - `on_poweroff` (default `destroy`), `on_reboot` (default `restart`), `on_crash` (default
//!   `destroy`): `destroy`, `restart` or `preserve`;
//! - `disk` and `vif`: lists, kept as written: each `disk` entry is parsed by the block back
//!   end (`backends::blk::vbd`), the `vif` entries wait for the network back end;
//! - `type`: only `"pv"`.
//!
//! Anything else is an error naming the line, so a mistyped key is not silently ignored. This
//! module is hardware-free and host-tested.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What to do when the domain shuts down for a reason (xl's `on_*` actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Destroy it: its memory goes back.
    Destroy,
    /// Destroy it and build it again from its configuration.
    Restart,
    /// Leave it shut down, memory and all, for inspection (until destroyed by hand).
    Preserve,
}

impl Action {
    fn parse(v: &str) -> Option<Action> {
        match v {
            "destroy" => Some(Action::Destroy),
            "restart" => Some(Action::Restart),
            "preserve" => Some(Action::Preserve),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::Preserve => "preserve",
        }
    }
}

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// A file of dom0's ramdisk archive.
    Archive(String),
    /// A boot module the hypervisor kept (a `domu=` on its command line).
    BootModule(u32),
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Image::Archive(p) => write!(f, "{p}"),
            Image::BootModule(i) => write!(f, "boot module {i}"),
        }
    }
}

/// A domain's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    pub kernel: Image,
    pub ramdisk: Option<Image>,
    pub cmdline: String,
    pub memory_kib: u64,
    pub maxmem_kib: u64,
    pub vcpus: u32,
    pub weight: u32,
    pub cap: u32,
    /// `disk` entries, for the block back end (`backends::blk::vbd` parses them).
    pub disks: Vec<String>,
    /// `vif` entries, kept for the network back end to come.
    pub vifs: Vec<String>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
}

impl DomainConfig {
    /// A configuration with xl's defaults for everything but the name and kernel.
    pub fn new(name: &str, kernel: Image) -> Self {
        DomainConfig {
            name: name.into(),
            kernel,
            ramdisk: None,
            cmdline: String::new(),
            memory_kib: DEFAULT_MEMORY_MIB << 10,
            maxmem_kib: DEFAULT_MEMORY_MIB << 10,
            vcpus: 1,
            weight: 256,
            cap: 0,
            disks: Vec::new(),
            vifs: Vec::new(),
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
        }
    }
}

/// xl's default `memory`.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Longest domain name (the hypervisor keeps 16 bytes of it in its handle).
pub const MAX_NAME: usize = 16;

/// Why a configuration is refused: the line (0 when the file as a whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Num(u64),
    List(Vec<String>),
}

fn err(line: usize, msg: impl ToString) -> ConfigError {
    ConfigError { line, msg: msg.to_string() }
}

/// Splits the text into `(line, key, value)` settings, joining lists that span lines.
fn settings(text: &str) -> Result<Vec<(usize, String, Value)>, ConfigError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, raw)) = lines.next() {
        let line = strip_comment(raw).trim().trim_end_matches(';').trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| err(n, "expected key = value"))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(err(n, format!("bad key {key:?}")));
        }
        let mut value = String::from(value.trim());
        if value.starts_with('[') {
            while !strip_comment(&value).trim_end().trim_end_matches(';').ends_with(']') {
                let (_, more) = lines.next().ok_or_else(|| err(n, "list is not closed with ]"))?;
                value.push(' ');
                value.push_str(strip_comment(more).trim());
            }
            value = strip_comment(&value).trim().trim_end_matches(';').trim().into();
        }
        out.push((n, key.into(), parse_value(n, &value)?));
    }
    Ok(out)
}

/// The line up to a `#` outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_string(n: usize, v: &str) -> Result<(String, usize), ConfigError> {
    let q = v.chars().next().filter(|c| *c == '"' || *c == '\'');
    let q = q.ok_or_else(|| err(n, format!("expected a quoted string, found {v:?}")))?;
    let end = v[1..].find(q).ok_or_else(|| err(n, "string is not closed"))? + 1;
    Ok((v[1..end].into(), end + 1))
}

fn parse_value(n: usize, v: &str) -> Result<Value, ConfigError> {
    if let Some(inner) = v.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| err(n, "list is not closed with ]"))?;
        let mut items = Vec::new();
        let mut rest = inner.trim();
        while !rest.is_empty() {
            let (s, used) = parse_string(n, rest)?;
            items.push(s);
            rest = rest[used..].trim_start();
            rest = match rest.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if rest.is_empty() => rest,
                None => return Err(err(n, "list items must be separated by commas")),
            };
        }
        return Ok(Value::List(items));
    }
    if v.starts_with('"') || v.starts_with('\'') {
        let (s, used) = parse_string(n, v)?;
        if !v[used..].trim().is_empty() {
            return Err(err(n, format!("unexpected text after the string: {:?}", &v[used..])));
        }
        return Ok(Value::Str(s));
    }
    v.parse::<u64>().map(Value::Num).map_err(|_| err(n, format!("bad value {v:?}")))
}

fn string(n: usize, key: &str, v: Value) -> Result<String, ConfigError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(err(n, format!("{key} must be a quoted string"))),
    }
}

fn number(n: usize, key: &str, v: Value) -> Result<u64, ConfigError> {
    match v {
        Value::Num(x) => Ok(x),
        Value::Str(s) => s.parse().map_err(|_| err(n, format!("{key} must be a number"))),
        Value::List(_) => Err(err(n, format!("{key} must be a number"))),
    }
}

fn list(n: usize, key: &str, v: Value) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(err(n, format!("{key} must be a list [\"...\", ...]"))),
    }
}

/// An image path as the archive names it: no leading `/` or `./`, no empty or `..` part.
fn image_path(n: usize, key: &str, p: &str) -> Result<Image, ConfigError> {
    let p = p.trim_start_matches("./").trim_start_matches('/');
    if p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "..") {
        return Err(err(n, format!("{key} {p:?} is not a path in the archive")));
    }
    Ok(Image::Archive(p.into()))
}

/// Parses a configuration file.
pub fn parse(text: &str) -> Result<DomainConfig, ConfigError> {
    let mut name = None;
    let mut kernel = None;
    let mut cfg = DomainConfig::new("", Image::Archive(String::new()));
    let (mut memory, mut maxmem, mut cmdline, mut extra) = (None, None, None, None);
    let mut seen: Vec<String> = Vec::new();
    for (n, key, v) in settings(text)? {
        if seen.contains(&key) {
            return Err(err(n, format!("{key} is given twice")));
        }
        seen.push(key.clone());
        match key.as_str() {
            "name" => name = Some((n, string(n, &key, v)?)),
            "kernel" => kernel = Some(image_path(n, &key, &string(n, &key, v)?)?),
            "ramdisk" => cfg.ramdisk = Some(image_path(n, &key, &string(n, &key, v)?)?),
            "cmdline" => cmdline = Some(string(n, &key, v)?),
            "extra" => extra = Some(string(n, &key, v)?),
            "memory" => memory = Some((n, number(n, &key, v)?)),
            "maxmem" => maxmem = Some((n, number(n, &key, v)?)),
            "vcpus" => {
                cfg.vcpus = number(n, &key, v)? as u32;
                if cfg.vcpus != 1 {
                    return Err(err(
                        n,
                        format!(
                            "vcpus = {}: one vCPU per domain is all the hypervisor runs",
                            cfg.vcpus
                        ),
                    ));
                }
            }
            "cpu_weight" => {
                let w = number(n, &key, v)?;
                if !(1..=65535).contains(&w) {
                    return Err(err(n, "cpu_weight must be 1..65535"));
                }
                cfg.weight = w as u32;
            }
            "cap" => {
                let c = number(n, &key, v)?;
                if c > 100 {
                    return Err(err(n, "cap is a percentage of one CPU (0..100)"));
                }
                cfg.cap = c as u32;
            }
            "disk" => cfg.disks = list(n, &key, v)?,
            "vif" => cfg.vifs = list(n, &key, v)?,
            "on_poweroff" | "on_reboot" | "on_crash" => {
                let s = string(n, &key, v)?;
                let a = Action::parse(&s).ok_or_else(|| {
                    err(n, format!("{key} = {s:?}: want \"destroy\", \"restart\" or \"preserve\""))
                })?;
                match key.as_str() {
                    "on_poweroff" => cfg.on_poweroff = a,
                    "on_reboot" => cfg.on_reboot = a,
                    _ => cfg.on_crash = a,
                }
            }
            "type" => {
                let t = string(n, &key, v)?;
                if t != "pv" {
                    return Err(err(n, format!("type = {t:?}: only PV domains are built")));
                }
            }
            _ => return Err(err(n, format!("unknown key {key:?}"))),
        }
    }
    let (n, name) = name.ok_or_else(|| err(0, "no name"))?;
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(err(
            n,
            format!("name {name:?}: 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"),
        ));
    }
    cfg.name = name;
    cfg.kernel = kernel.ok_or_else(|| err(0, "no kernel"))?;
    cfg.cmdline = match (cmdline, extra) {
        (Some(_), Some(_)) => return Err(err(0, "give cmdline or extra, not both")),
        (c, e) => c.or(e).unwrap_or_default(),
    };
    if let Some((n, m)) = memory {
        if m == 0 || m > 1 << 20 {
            return Err(err(n, format!("memory = {m}: want 1 to {} MiB", 1 << 20)));
        }
        cfg.memory_kib = m << 10;
    }
    cfg.maxmem_kib = cfg.memory_kib;
    if let Some((n, m)) = maxmem {
        if m << 10 < cfg.memory_kib || m > 1 << 20 {
            return Err(err(n, format!("maxmem = {m}: below memory or over {} MiB", 1 << 20)));
        }
        cfg.maxmem_kib = m << 10;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_with_xls_meanings() {
        let c = parse(
            r#"
# a ticker
name = "ticker"
kernel = "/kernels/pv-guest"   # from the archive
ramdisk = './initrd.img';
extra = "scenario=ticker count=5 # not a comment"
memory = 32
maxmem = 64
vcpus = 1
cpu_weight = 512
cap = 25
disk = [ 'phy:/dev/vda,xvda,w',
         "file:/x.img,xvdb,r" ]
vif = []
on_crash = "restart"
on_reboot = 'preserve'
type = "pv"
"#,
        )
        .unwrap();
        assert_eq!(c.name, "ticker");
        assert_eq!(c.kernel, Image::Archive("kernels/pv-guest".into()));
        assert_eq!(c.ramdisk, Some(Image::Archive("initrd.img".into())));
        assert_eq!(c.cmdline, "scenario=ticker count=5 # not a comment");
        assert_eq!((c.memory_kib, c.maxmem_kib), (32 << 10, 64 << 10));
        assert_eq!((c.vcpus, c.weight, c.cap), (1, 512, 25));
        assert_eq!(c.disks, ["phy:/dev/vda,xvda,w", "file:/x.img,xvdb,r"]);
        assert!(c.vifs.is_empty());
        assert_eq!(c.on_poweroff, Action::Destroy);
        assert_eq!(c.on_reboot, Action::Preserve);
        assert_eq!(c.on_crash, Action::Restart);
    }

    #[test]
    fn defaults_are_xls() {
        let c = parse("name='a'\nkernel='k'\ncmdline=\"console=hvc0\"\n").unwrap();
        assert_eq!(c.memory_kib, DEFAULT_MEMORY_MIB << 10);
        assert_eq!(c.maxmem_kib, c.memory_kib);
        assert_eq!(c.cmdline, "console=hvc0");
        assert_eq!(
            (c.on_poweroff, c.on_reboot, c.on_crash),
            (Action::Destroy, Action::Restart, Action::Destroy)
        );
        assert_eq!((c.weight, c.cap, c.vcpus), (256, 0, 1));
    }

    #[test]
    fn every_mistake_is_an_error_naming_its_line() {
        let bad = |text: &str, want: &str| {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e:?} does not say {want:?}");
        };
        let ok = "name = \"a\"\nkernel = \"k\"\n";
        bad("kernel = \"k\"\n", "no name");
        bad("name = \"a\"\n", "no kernel");
        bad(&format!("{ok}memory 32\n"), "line 3: expected key = value");
        bad(&format!("{ok}memroy = 32\n"), "line 3: unknown key \"memroy\"");
        bad(&format!("{ok}memory = \"lots\"\n"), "line 3: memory must be a number");
        bad(&format!("{ok}memory = 0\n"), "line 3: memory = 0");
        bad(&format!("{ok}memory = 64\nmaxmem = 32\n"), "line 4: maxmem = 32: below memory");
        bad(&format!("{ok}vcpus = 2\n"), "line 3: vcpus = 2: one vCPU per domain");
        bad(&format!("{ok}on_crash = \"explode\"\n"), "line 3: on_crash = \"explode\"");
        bad(&format!("{ok}disk = [ \"a\" \"b\" ]\n"), "separated by commas");
        bad(&format!("{ok}disk = [ \"a\",\n"), "line 3: list is not closed");
        bad(&format!("{ok}extra = \"x\n"), "line 3: string is not closed");
        bad(&format!("{ok}name = \"b\"\n"), "line 3: name is given twice");
        bad("name = \"a b\"\nkernel = \"k\"\n", "line 1: name \"a b\"");
        bad("name = \"a\"\nkernel = \"../k\"\n", "line 2: kernel \"../k\" is not a path");
        bad(&format!("{ok}cmdline = \"a\"\nextra = \"b\"\n"), "cmdline or extra, not both");
        bad(&format!("{ok}type = \"hvm\"\n"), "only PV");
        bad(&format!("{ok}cap = 101\n"), "line 3: cap");
        bad(&format!("{ok}kernel2 = 'x' junk\n"), "line 3: unexpected text");
    }
}
