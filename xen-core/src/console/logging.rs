//! The hypervisor's log: the `log` facade printed on the serial console as
//! `(XEN) [   1.234567] message`, filtered by `loglvl=` (Xen's names: none, error, warning,
//! info, debug, all). Messages a guest can cause go through `guest_log!`, which is rate
//! limited per domain so a guest cannot flood the console.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Log, Metadata, Record};
use spin::Mutex;

use super::ring::{LOG_RING_SIZE, LogRing};
use crate::arch::{serial, time};

struct SerialLog;

static LOGGER: SerialLog = SerialLog;
static LOCK: Mutex<()> = Mutex::new(());
/// Set once the hypervisor is going down: logging then bypasses the lock, which the failing
/// context may hold.
static PANICKING: AtomicBool = AtomicBool::new(false);
/// What the console printed last (`XEN_SYSCTL_readconsole`). Written under `LOCK`; its own
/// lock keeps a reader from seeing half a write.
static RING: Mutex<LogRing<LOG_RING_SIZE>> = Mutex::new(LogRing::new());

/// Writes to the serial line and keeps a copy in the ring (not while panicking: the ring's
/// lock may be held by the failing context).
fn out(bytes: &[u8]) {
    serial::write_bytes(bytes);
    if !PANICKING.load(Ordering::Relaxed) {
        RING.lock().write(bytes);
    }
}

/// Runs `f` on the log ring (the readconsole sysctl).
pub fn with_ring<R>(f: impl FnOnce(&mut LogRing<LOG_RING_SIZE>) -> R) -> R {
    f(&mut RING.lock())
}

struct Out;

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        out(s.as_bytes());
        Ok(())
    }
}

fn emit(args: fmt::Arguments<'_>) {
    let ns = time::now_ns();
    let _ =
        writeln!(Out, "(XEN) [{:4}.{:06}] {}", ns / 1_000_000_000, (ns / 1000) % 1_000_000, args);
}

impl Log for SerialLog {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let args = *record.args();
        if PANICKING.load(Ordering::Relaxed) {
            emit(args);
            return;
        }
        let _g = LOCK.lock();
        match record.level() {
            log::Level::Error => emit(format_args!("*** {args}")),
            log::Level::Warn => emit(format_args!("WARNING: {args}")),
            _ => emit(args),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `level`.
pub fn init(level: LevelFilter) {
    serial::init();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses Xen's `loglvl=` names.
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "none" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "all" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Switches to lock-free output for the last messages before the machine stops.
pub fn enter_panic_mode() {
    PANICKING.store(true, Ordering::Relaxed);
}

/// Writes raw bytes (guest console output) under the log lock, so lines do not interleave;
/// `keep`: a copy goes to the log ring too (a domU's lines, as Xen keeps them; not dom0's).
pub fn write_raw(bytes: &[u8], keep: bool) {
    if PANICKING.load(Ordering::Relaxed) {
        serial::write_bytes(bytes);
        return;
    }
    let _g = LOCK.lock();
    if keep {
        out(bytes);
    } else {
        serial::write_bytes(bytes);
    }
}
