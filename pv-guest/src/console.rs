//! Kernel output: `print!`/`println!` and a `log` backend. Early output goes through the
//! `console_io` hypercall (the emergency console every PV guest has from its first
//! instruction); a domU then switches to its PV console ring (start_info `console.domU`), which
//! dom0's console back end drains. If the back end stops taking output (the ring stays full),
//! output falls back to `console_io` rather than hang the kernel.

use core::fmt::{self, Write};

use hypercall_abi::guest;
use spin::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

struct Ring {
    ring: ring_buffers::ConsoleGuest<'static>,
    port: hypercall_abi::EvtchnPort,
}

static RING: Mutex<Option<Ring>> = Mutex::new(None);

/// Switches output to the PV console ring, if the domain has one. Returns whether it did.
pub fn use_ring(si: &hypercall_abi::start_info::StartInfo) -> bool {
    let c = si.console.domu();
    if si.is_initdomain() || c.mfn.0 == 0 {
        return false;
    }
    let Some(page) = crate::memory::shared::own_page_for(c.mfn.0) else { return false };
    let ring = crate::memory::shared::console_ring(page).guest();
    crate::events::on(c.evtchn, |_| {});
    let _ = crate::events::unmask(c.evtchn);
    *RING.lock() = Some(Ring { ring, port: c.evtchn });
    true
}

/// Whether output goes to the PV console ring.
pub fn on_ring() -> bool {
    RING.lock().is_some()
}

/// Waits (up to `timeout_ns`) until the back end has taken everything written to the ring;
/// false if it did not in time. Immediately true on `console_io`.
pub fn flush(timeout_ns: u64) -> bool {
    let deadline = crate::time::now_ns() + timeout_ns;
    loop {
        let space = match RING.lock().as_mut() {
            None => return true,
            Some(r) => r.ring.write_space(),
        };
        match space {
            Ok(n) if n as usize == ring_buffers::CONSOLE_OUT.size as usize => return true,
            Ok(_) if crate::time::now_ns() < deadline => crate::time::sleep_ns(200_000),
            _ => return false,
        }
    }
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    let mut ring = RING.lock();
    let Some(r) = ring.as_mut() else {
        let _ = guest::console_io_write(bytes);
        return;
    };
    let mut rest = bytes;
    let mut stalls = 0;
    while !rest.is_empty() {
        match r.ring.write(rest) {
            Ok(t) if t.bytes > 0 => {
                rest = &rest[t.bytes..];
                stalls = 0;
                let _ = crate::events::send(r.port);
            }
            Ok(_) if stalls < 100 => {
                // Full: wait (bounded) for the back end to drain it.
                stalls += 1;
                let _ = guest::set_timer_op(crate::time::now_ns() + 1_000_000);
                crate::events::wait();
            }
            _ => {
                // The back end is gone or the ring is broken: say so once and fall back.
                *ring = None;
                let _ = guest::console_io_write(
                    b"[console ring stalled: falling back to console_io]\n",
                );
                let _ = guest::console_io_write(rest);
                return;
            }
        }
    }
}

/// Reads what dom0 sent to this console (input), if any.
pub fn read_input(buf: &mut [u8]) -> usize {
    RING.lock().as_mut().and_then(|r| r.ring.read(buf).ok()).map_or(0, |t| t.bytes)
}

/// Formats into a buffer on the stack and hands it to `sink` when full and at the end: one
/// write for any print up to 256 bytes, so lines from different writers do not interleave, and
/// no heap (the panic handler prints too, possibly with the heap exhausted or locked).
struct LineBuf {
    buf: [u8; 256],
    len: usize,
    sink: fn(&[u8]),
}

impl LineBuf {
    fn new(sink: fn(&[u8])) -> Self {
        LineBuf { buf: [0; 256], len: 0, sink }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _g = LOCK.lock();
    let mut b = LineBuf::new(write_bytes);
    let _ = b.write_fmt(args);
    b.flush();
}

/// Prints straight through `console_io`, taking no lock and no heap: for the panic handler,
/// which may run with the console or the heap locked by the code that panicked.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let mut b = LineBuf::new(|bytes| {
        let _ = guest::console_io_write(bytes);
    });
    let _ = b.write_fmt(args);
    b.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            _print(format_args!("[{}] {}\n", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the `log` backend.
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
