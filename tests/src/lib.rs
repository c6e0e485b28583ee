//! System-test harness: boots the images in `target/images/` under QEMU (TCG), captures the
//! serial console, and gives tests the exit status and the lines to assert on.
//!
//! A run ends when QEMU exits (the hypervisor's isa-debug-exit codes say how), when a line
//! matches `until`, or at the timeout, which is a failure. Every run's serial output is kept
//! in `target/test-logs/<name>.log` for whoever has to debug a failure.

pub mod linux;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A raw disk image of `mib` MiB under target/ (sparse, created afresh), for [`Boot::disk`].
pub fn scratch_disk(name: &str, mib: u64) -> PathBuf {
    let dir = root().join("target/disks");
    std::fs::create_dir_all(&dir).expect("target/disks");
    let p = dir.join(format!("{name}.img"));
    let f = std::fs::File::create(&p).expect("a disk image");
    f.set_len(mib << 20).expect("disk image size");
    p
}

/// QEMU exit statuses the hypervisor produces (isa-debug-exit: 2v + 1).
pub const EXIT_POWEROFF: i32 = 33;
pub const EXIT_REBOOT: i32 = 35;
pub const EXIT_CRASH: i32 = 37;
pub const EXIT_HV_FAILURE: i32 = 39;

static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Taken by tests that measure time (fairness, latency, timers): no other QEMU of this test
/// binary runs beside them, so on a 2-core machine they measure our scheduler, not the host's.
pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// Taken by every other test of a binary that has timing tests.
pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Path of an image built by `scripts/build`.
pub fn image(name: &str) -> PathBuf {
    let p = root().join("target/images").join(name);
    assert!(
        p.exists(),
        "{} is missing: run ./scripts/build (./scripts/test does) first",
        p.display()
    );
    p
}

/// The decimal number after `key` in `line` (`key 123`, `key: 123`, `key -5`).
pub fn num_after(line: &str, key: &str) -> i64 {
    let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("{key:?} not in {line:?}"));
    let rest = rest.trim_start_matches([' ', ':']);
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '-').unwrap_or(rest.len());
    rest[..end].parse().unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}

/// One boot.
#[derive(Clone, Debug)]
pub struct Boot {
    /// Name for the log file.
    pub name: String,
    /// Hypervisor command line.
    pub hv_args: String,
    /// Modules: (path, args). Module 0 is dom0's kernel.
    pub modules: Vec<(PathBuf, String)>,
    pub timeout: Duration,
    /// End the run (successfully) as soon as a line contains one of these.
    pub until: Vec<String>,
    pub memory_mib: u32,
    pub extra_qemu: Vec<String>,
    /// Serial input: when a line contains the first string, type the second.
    pub input: Vec<(String, String)>,
    /// A dialog: serial input typed in order, each once a line after the previous one's
    /// contains its marker.
    pub dialog: Vec<(String, String)>,
}

impl Boot {
    /// A boot of `dom0` (an image name in target/images) with `dom0_args`.
    pub fn new(name: &str, dom0: &str, dom0_args: &str) -> Self {
        Boot {
            name: name.into(),
            hv_args: "loglvl=info".into(),
            modules: vec![(image(dom0), dom0_args.into())],
            timeout: Duration::from_secs(120),
            until: Vec::new(),
            memory_mib: 512,
            extra_qemu: Vec::new(),
            input: Vec::new(),
            dialog: Vec::new(),
        }
    }

    pub fn hv_args(mut self, args: &str) -> Self {
        self.hv_args = args.into();
        self
    }

    pub fn module(mut self, path: PathBuf, args: &str) -> Self {
        self.modules.push((path, args.into()));
        self
    }

    /// One `pv-guest` module per entry, with that command line (the domUs `domu=` names).
    pub fn domus(self, args: &[&str]) -> Self {
        args.iter().fold(self, |b, a| b.module(image("pv-guest"), a))
    }

    /// Types `text` on the serial line once a line contains `marker`.
    pub fn type_after(mut self, marker: &str, text: &str) -> Self {
        self.input.push((marker.into(), text.into()));
        self
    }

    /// The next step of a dialog: types `text` once a line (after the previous step's) contains
    /// `marker`.
    pub fn step(mut self, marker: &str, text: &str) -> Self {
        self.dialog.push((marker.into(), text.into()));
        self
    }

    /// Ends the run as soon as a line contains `marker` (or any other `until` marker).
    pub fn until(mut self, marker: &str) -> Self {
        self.until.push(marker.into());
        self
    }

    /// Gives dom0 a virtio-blk disk backed by `image` (a raw file), as `./scripts/run` does.
    pub fn disk(self, image: &Path) -> Self {
        self.disk_with(image, "")
    }

    /// [`Boot::disk`] with more `-drive` options (`",cache=writethrough"`).
    pub fn disk_with(mut self, image: &Path, drive_opts: &str) -> Self {
        let id = format!(
            "disk{}",
            self.extra_qemu.iter().filter(|a| a.starts_with("virtio-blk")).count()
        );
        self.extra_qemu.extend([
            "-drive".into(),
            format!("file={},format=raw,if=none,id={id}{drive_opts}", image.display()),
            "-device".into(),
            format!("virtio-blk-pci,drive={id}"),
        ]);
        self
    }

    /// Gives dom0 a virtio-net NIC on QEMU's user network (gateway 10.0.2.2), with host port
    /// `fwd.0` forwarded to the guest's port `fwd.1` if given.
    pub fn nic(mut self, fwd: Option<(u16, u16)>) -> Self {
        let fwd = fwd.map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}")).unwrap_or_default();
        self.extra_qemu.extend([
            "-netdev".into(),
            format!("user,id=n0{fwd}"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.timeout = Duration::from_secs(s);
        self
    }

    /// The QEMU command line, as a user would type it.
    pub fn command(&self, kernel: &Path) -> Command {
        let initrd: Vec<String> = self
            .modules
            .iter()
            .map(|(p, a)| {
                if a.is_empty() { p.display().to_string() } else { format!("{} {a}", p.display()) }
            })
            .collect();
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-accel", "tcg", "-cpu", "max", "-m"])
            .arg(self.memory_mib.to_string())
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-append")
            .arg(&self.hv_args)
            .args(&self.extra_qemu);
        if !initrd.is_empty() {
            c.arg("-initrd").arg(initrd.join(","));
        }
        c
    }

    /// Boots with `kernel` as dom0's image instead of the one named at construction.
    pub fn run_with_dom0(mut self, kernel: &Path) -> Run {
        self.modules[0].0 = kernel.to_path_buf();
        self.run()
    }

    /// Boots and collects the serial output.
    pub fn run(&self) -> Run {
        let kernel = image("xen-core");
        let mut child = self
            .command(&kernel)
            .stdin(if self.input.is_empty() && self.dialog.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 runs (./scripts/test installs it)");
        let start = Instant::now();
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel::<(f64, String)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                if tx.send((start.elapsed().as_secs_f64(), text)).is_err() {
                    break;
                }
            }
        });
        let mut stdin = child.stdin.take();
        let mut pending_input: Vec<(String, String)> = self.input.clone();
        let mut dialog = self.dialog.iter();
        let mut next_step = dialog.next();
        let mut lines = Vec::new();
        let mut timed_out = false;
        let mut stopped_early = false;
        loop {
            let left = self.timeout.saturating_sub(start.elapsed());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok((t, line)) => {
                    let mut to_type = Vec::new();
                    if let Some(i) =
                        pending_input.iter().position(|(m, _)| line.contains(m.as_str()))
                    {
                        to_type.push(pending_input.remove(i).1);
                    }
                    if let Some((m, text)) = next_step
                        && line.contains(m.as_str())
                    {
                        to_type.push(text.clone());
                        next_step = dialog.next();
                    }
                    for text in to_type {
                        if let Some(w) = stdin.as_mut() {
                            use std::io::Write;
                            let _ = w.write_all(text.as_bytes());
                            let _ = w.flush();
                        }
                    }
                    let hit = self.until.iter().any(|u| line.contains(u.as_str()));
                    lines.push((t, line));
                    if hit {
                        stopped_early = true;
                        let _ = child.kill();
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if start.elapsed() >= self.timeout {
                        timed_out = true;
                        let _ = child.kill();
                        break;
                    }
                }
            }
        }
        let status = child.wait().expect("qemu exits");
        let _ = reader.join();
        while let Ok((t, line)) = rx.try_recv() {
            lines.push((t, line));
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let run = Run { status: status.code(), timed_out, stopped_early, lines, stderr };
        run.save(&self.name);
        run
    }
}

/// What a boot produced.
#[derive(Debug)]
pub struct Run {
    /// QEMU's exit status (None if killed).
    pub status: Option<i32>,
    pub timed_out: bool,
    /// Ended because a line matched `until`.
    pub stopped_early: bool,
    /// Serial lines with seconds since QEMU started.
    pub lines: Vec<(f64, String)>,
    pub stderr: String,
}

impl Run {
    fn save(&self, name: &str) {
        let dir = root().join("target/test-logs");
        let _ = std::fs::create_dir_all(&dir);
        let mut out = String::new();
        for (t, l) in &self.lines {
            out.push_str(&format!("{t:9.3} {l}\n"));
        }
        out.push_str(&format!(
            "-- status {:?} timed_out {} stderr: {}\n",
            self.status, self.timed_out, self.stderr
        ));
        let _ = std::fs::write(dir.join(format!("{name}.log")), out);
    }

    /// The whole serial output.
    pub fn text(&self) -> String {
        self.lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// Whether some line contains `s`.
    pub fn has(&self, s: &str) -> bool {
        self.lines.iter().any(|(_, l)| l.contains(s))
    }

    /// Lines containing `s`.
    pub fn matching(&self, s: &str) -> Vec<&str> {
        self.lines.iter().filter(|(_, l)| l.contains(s)).map(|(_, l)| l.as_str()).collect()
    }

    /// The first line containing `s`; fails the test, showing the output, if there is none.
    #[track_caller]
    pub fn line(&self, s: &str) -> &str {
        self.matching(s)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no line contains {s:?}; serial output:\n{}", self.text()))
    }

    /// Time of the first line containing `s`.
    pub fn time_of(&self, s: &str) -> Option<f64> {
        self.lines.iter().find(|(_, l)| l.contains(s)).map(|(t, _)| *t)
    }

    /// Asserts a line containing `s`, showing the output otherwise.
    #[track_caller]
    pub fn expect(&self, s: &str) {
        assert!(self.has(s), "no line contains {s:?}; serial output:\n{}", self.text());
    }

    /// Asserts no line contains `s`.
    #[track_caller]
    pub fn expect_not(&self, s: &str) {
        assert!(!self.has(s), "a line contains {s:?}; serial output:\n{}", self.text());
    }

    /// Asserts the exit status.
    #[track_caller]
    pub fn expect_status(&self, code: i32) {
        assert!(!self.timed_out, "timed out; serial output:\n{}", self.text());
        assert_eq!(
            self.status,
            Some(code),
            "exit status; serial output:\n{}\nstderr: {}",
            self.text(),
            self.stderr
        );
    }

    /// Asserts every `TEST x: ...` line passed and that each of `names` reported.
    #[track_caller]
    pub fn expect_tests_pass(&self, names: &[&str]) {
        for n in names {
            self.expect(&format!("TEST {n}: PASS"));
        }
        self.expect_not(": FAIL");
    }
}

/// dom0's ramdisk for guests its toolstack builds: a newc cpio archive of `files` (name in
/// the archive, bytes), written to `target/test-archives/<name>.cpio` (aside, then renamed:
/// tests running beside each other each write their own).
pub fn guest_archive(name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut cpio = linux::Cpio::default();
    for (n, bytes) in files {
        cpio.file(n, 0o644, bytes);
    }
    let dir = root().join("target/test-archives");
    std::fs::create_dir_all(&dir).expect("target/ is writable");
    let path = dir.join(format!("{name}.cpio"));
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, cpio.finish()).expect("target/ is writable");
    std::fs::rename(&tmp, &path).expect("target/ is writable");
    path
}

/// The pv-guest image, as a file of a guest archive.
pub fn pv_guest_file() -> (&'static str, Vec<u8>) {
    ("pv-guest", std::fs::read(image("pv-guest")).expect("pv-guest is built"))
}

/// Where `shared/tools/xen-reference` (real Xen 4.17 under the same QEMU) is: `$XEN_REFERENCE`,
/// else `shared/tools/` next to the checkout or next to the folder of worktrees it is in.
pub fn xen_reference_tool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("XEN_REFERENCE") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    ["../shared/tools/xen-reference", "../../shared/tools/xen-reference"]
        .iter()
        .map(|rel| root().join(rel))
        .find(|p| p.exists())
}

/// Runs the xen-reference tool with `args` and no input; its standard output. `None`, with a
/// note, where the tool is missing or cannot run.
pub fn xen_reference(args: &[&str]) -> Option<String> {
    let Some(tool) = xen_reference_tool() else {
        eprintln!("shared/tools/xen-reference not found (set XEN_REFERENCE): no Xen run");
        return None;
    };
    let out = Command::new(&tool).args(args).stdin(Stdio::null()).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`xen_reference`] for a test that compares with Xen: `None` (skip) where the tool is
/// missing, unless `REQUIRE_XEN_REFERENCE` is set, which makes a missing tool a failure.
pub fn xen_reference_or_skip(args: &[&str]) -> Option<String> {
    let out = xen_reference(args);
    assert!(
        out.is_some() || std::env::var_os("REQUIRE_XEN_REFERENCE").is_none(),
        "REQUIRE_XEN_REFERENCE is set but the xen-reference tool is missing"
    );
    out
}

/// The median of `v` (the upper one of an even count).
pub fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// `(name, cycles, ns)` from a `BENCH name: median C cycles (N ns)` line (a guest's line may
/// carry dom0's `[name] ` prefix).
pub fn parse_bench(line: &str) -> Option<(&str, u64, u64)> {
    let rest = line.split("BENCH ").nth(1)?;
    let (name, rest) = rest.split_once(':')?;
    let cycles = rest.split("median ").nth(1)?.split(' ').next()?.parse().ok()?;
    let ns = rest.split('(').nth(1)?.split(' ').next()?.parse().ok()?;
    Some((name, cycles, ns))
}
