//! Linux for the system tests: Debian bookworm's own kernel, unmodified, and a busybox
//! initramfs built here.
//!
//! [`linux_guest`] resolves the metapackage `linux-image-amd64` to the kernel package it
//! depends on, fetches that and `busybox-static` with `apt-get download` into a cache outside
//! the clone (`$XEN_CORE_TEST_CACHE`, else `~/.cache/xen-core-tests`), once per machine and
//! kernel version (`apt-get update` first if a lookup or download fails), and unpacks them
//! with `dpkg -x`. It then writes a newc cpio initramfs (no cpio tool; uncompressed, which
//! Linux accepts) holding busybox, an `/init` script, the `xen-blkfront` and `xen-netfront`
//! modules, ext4 with the modules it needs, and `linux-probe` (this crate's user-space checks and benchmarks, built static for
//! `x86_64-unknown-linux-gnu` with `+crt-static`). Several worktrees may share the cache:
//! everything lands under a temporary name and is renamed into place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::root;

/// What a Linux domU boots from.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// Debian's `vmlinuz` (a bzImage, XZ inside).
    pub kernel: PathBuf,
    /// The newc cpio initramfs.
    pub initramfs: PathBuf,
    /// The kernel package, e.g. `linux-image-6.1.0-57-amd64`.
    pub package: String,
    /// The unpacked kernel package (its `lib/modules/...` too).
    pub unpacked: PathBuf,
}

/// Markers `/init` prints, for tests to wait on.
pub const INIT_UP: &str = "LINUX-INIT: up";
pub const INIT_SHELL: &str = "LINUX-INIT: shell";
pub const TLS_PASS: &str = "TLS-TEST: PASS";

const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The kernel runs /sbin/poweroff when the toolstack asks it to power off (control/shutdown).
mkdir -p /sbin
printf '#!/bin/sh\nexec /bin/busybox poweroff -f\n' >/sbin/poweroff
chmod 755 /sbin/poweroff
echo "LINUX-INIT: up: $(uname -r), init pid $$"
for m in /lib/modules/*.ko; do
    insmod "$m" && echo "LINUX-INIT: loaded ${m##*/}"
done
/bin/linux-probe tls
if grep -q probe=bench /proc/cmdline; then
    /bin/linux-probe bench
    echo "LINUX-INIT: shell"
    poweroff -f
fi
echo "LINUX-INIT: shell"
exec setsid cttyhack sh
"#;

/// Where downloads and unpacked packages are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XEN_CORE_TEST_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache/xen-core-tests")
}

/// The kernel and initramfs, fetched and built once per test process. The error says what
/// failed (no apt-get, no network, a package missing) so a test can report it.
pub fn linux_guest() -> Result<LinuxGuest, String> {
    static ONCE: Mutex<Option<Result<LinuxGuest, String>>> = Mutex::new(None);
    let mut once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    once.get_or_insert_with(prepare).clone()
}

/// [`linux_guest`] for a test: `None` (the test skips, saying why) where the images cannot
/// be had, unless `CI` or `REQUIRE_LINUX` is set, which makes that a failure.
pub fn linux_guest_or_skip() -> Option<LinuxGuest> {
    match linux_guest() {
        Ok(g) => Some(g),
        Err(e) => {
            let required =
                std::env::var_os("CI").is_some() || std::env::var_os("REQUIRE_LINUX").is_some();
            assert!(!required, "no Debian Linux image, and CI or REQUIRE_LINUX needs one: {e}");
            eprintln!("SKIPPED: no Debian Linux image for this test: {e}");
            None
        }
    }
}

fn prepare() -> Result<LinuxGuest, String> {
    for tool in ["apt-get", "apt-cache", "dpkg"] {
        if Command::new(tool).arg("--version").stdout(Stdio::null()).status().is_err() {
            return Err(format!(
                "{tool} is not available: the Linux tests fetch Debian's linux-image-amd64 and \
                 busybox-static with apt-get and unpack them with dpkg (a Debian host is needed)"
            ));
        }
    }
    let cache = cache_dir();
    std::fs::create_dir_all(cache.join("debs"))
        .map_err(|e| format!("cannot create the cache {}: {e}", cache.display()))?;
    let package = kernel_package(&cache)?;
    let unpacked = fetch_and_unpack(&cache, &package)?;
    let busybox = fetch_and_unpack(&cache, "busybox-static")?;
    let kernel = find_file(&unpacked.join("boot"), "vmlinuz-")?;
    let release = kernel_file_release(&kernel)?;
    let modules = unpacked.join("lib/modules").join(&release).join("kernel/drivers");
    let probe = build_probe()?;
    let out = root().join("target/linux-guest");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let initramfs = out.join(format!("initramfs-{release}.cpio"));
    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "root"] {
        cpio.dir(d);
    }
    cpio.node("dev/console", 0o20600, (5, 1));
    cpio.file("bin/busybox", 0o755, &read(&busybox.join("bin/busybox"))?);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", 0o755, INIT_SCRIPT.as_bytes());
    for m in ["block/xen-blkfront.ko", "net/xen-netfront.ko"] {
        let name = m.rsplit('/').next().unwrap_or(m);
        cpio.file(&format!("lib/modules/{name}"), 0o644, &read(&modules.join(m))?);
    }
    // ext4 and what it needs (Debian builds them as modules), named so that /init's glob
    // loads them in dependency order, before the others.
    let kernel_dir = unpacked.join("lib/modules").join(&release).join("kernel");
    for (i, m) in [
        "lib/crc16.ko",
        "crypto/crc32c_generic.ko",
        "fs/mbcache.ko",
        "fs/jbd2/jbd2.ko",
        "fs/ext4/ext4.ko",
    ]
    .iter()
    .enumerate()
    {
        let name = m.rsplit('/').next().unwrap_or(m);
        cpio.file(&format!("lib/modules/{i:02}-{name}"), 0o644, &read(&kernel_dir.join(m))?);
    }
    cpio.file("bin/linux-probe", 0o755, &read(&probe)?);
    write_atomic(&initramfs, &cpio.finish())?;
    Ok(LinuxGuest { kernel, initramfs, package, unpacked })
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

fn write_atomic(p: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, p).map_err(|e| format!("cannot rename to {}: {e}", p.display()))
}

/// Runs a command; its standard output, or an error with its standard error.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn apt_update() -> Result<(), String> {
    run(Command::new("apt-get").args(["update", "-qq"])).map(|_| ())
}

/// Runs `f`; if it fails, `apt-get update` and `f` again.
fn with_update<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    f().or_else(|first| {
        apt_update().map_err(|e| format!("{first}; then apt-get update failed: {e}"))?;
        f()
    })
}

/// The package `linux-image-amd64` depends on now; offline, the last one resolved.
fn kernel_package(cache: &Path) -> Result<String, String> {
    let last = cache.join("linux-image-package");
    let resolve = || {
        let out = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_string)
            .ok_or_else(|| "apt-cache knows no dependency of linux-image-amd64".to_string())
    };
    match with_update(resolve) {
        Ok(p) => {
            write_atomic(&last, p.as_bytes())?;
            Ok(p)
        }
        Err(e) => std::fs::read_to_string(&last)
            .map(|p| p.trim().to_string())
            .map_err(|_| format!("cannot resolve linux-image-amd64: {e}")),
    }
}

/// `cache/<package>/`, unpacked from the package's .deb (downloaded unless kept).
/// Downloads Debian package `package` with apt-get (once: the cache keeps it) and unpacks it;
/// the folder it is unpacked in.
pub fn fetch_and_unpack(cache: &Path, package: &str) -> Result<PathBuf, String> {
    let dir = cache.join(package);
    if dir.is_dir() {
        return Ok(dir);
    }
    let debs = cache.join("debs");
    let deb = match find_file(&debs, &format!("{package}_")) {
        Ok(d) => d,
        Err(_) => {
            // apt-get download writes into its working directory: a private one, then the
            // file is renamed into the cache.
            let work = debs.join(format!(".download-{}", std::process::id()));
            std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
            with_update(|| {
                run(Command::new("apt-get").args(["download", package]).current_dir(&work))
            })
            .map_err(|e| format!("cannot download {package} with apt-get: {e}"))?;
            let got = find_file(&work, &format!("{package}_"))?;
            let deb = debs.join(got.file_name().unwrap_or_default());
            std::fs::rename(&got, &deb).map_err(|e| format!("{}: {e}", deb.display()))?;
            let _ = std::fs::remove_dir_all(&work);
            deb
        }
    };
    let tmp = cache.join(format!(".{package}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))
        .map_err(|e| format!("cannot unpack {}: {e}", deb.display()))?;
    // Another process may have won the race: theirs is as good.
    if std::fs::rename(&tmp, &dir).is_err() && !dir.is_dir() {
        return Err(format!("cannot move the unpacked {package} to {}", dir.display()));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    // The unpacked tree is the cache; the .deb (70 MB for the kernel) is not needed again.
    let _ = std::fs::remove_file(&deb);
    Ok(dir)
}

/// The one file in `dir` whose name starts with `prefix`.
fn find_file(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .ok_or_else(|| format!("no {prefix}* in {}", dir.display()))
}

/// `6.1.0-57-amd64` from `.../vmlinuz-6.1.0-57-amd64`.
fn kernel_file_release(kernel: &Path) -> Result<String, String> {
    kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not named vmlinuz-<release>", kernel.display()))
}

/// Builds `linux-probe` static for Linux, in its own target directory (its flags would
/// otherwise rebuild everything else).
fn build_probe() -> Result<PathBuf, String> {
    let target = "x86_64-unknown-linux-gnu";
    let dir = root().join("target/linux-guest/build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "-p", "tests", "--bin", "linux-probe", "--target", target])
        .env("CARGO_TARGET_DIR", &dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C strip=debuginfo")
        .current_dir(root()))
    .map_err(|e| format!("cannot build linux-probe: {e}"))?;
    let bin = dir.join(target).join("release/linux-probe");
    let elf = read(&bin)?;
    if has_interpreter(&elf) {
        return Err(format!("{} is dynamically linked (no static glibc?)", bin.display()));
    }
    Ok(bin)
}

/// Whether an ELF64 file has a PT_INTERP segment (needs a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    let u = |at: usize, n: usize| {
        elf.get(at..at + n).map_or(0, |b| b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    let (phoff, phentsize, phnum) = (u(32, 8) as usize, u(54, 2) as usize, u(56, 2) as usize);
    (0..phnum).any(|i| u(phoff + i * phentsize, 4) == 3)
}

/// A newc ("070701") cpio archive, as Linux's initramfs unpacker reads it.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    /// A device node: `mode` with its type bits, `(major, minor)`.
    pub fn node(&mut self, name: &str, mode: u32, dev: (u32, u32)) {
        self.entry(name, mode, dev, &[]);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert!(a.starts_with(b"070701"));
        assert_eq!(&a[110..115], b"init\0");
        // Header + name (115) padded to 116; data 10 bytes padded to 12.
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[128..134], b"070701");
        assert_eq!(a.len() % 4, 0);
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        // The file's size field.
        assert_eq!(&a[6 + 6 * 8..6 + 7 * 8], b"0000000A");
    }

    #[test]
    fn the_interpreter_check_reads_program_headers() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&exe), "a test binary is dynamically linked");
        assert!(!has_interpreter(&[0u8; 64]));
    }
}
