//! Kernel output: `print!`/`println!` and a `log` backend, written through the `console_io`
//! hypercall (the emergency console every PV guest has from its first instruction).

use core::fmt::{self, Write};

use hypercall_abi::guest;
use spin::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

struct ConsoleIo;

impl Write for ConsoleIo {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    let _ = guest::console_io_write(bytes);
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _g = LOCK.lock();
    let _ = ConsoleIo.write_fmt(args);
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
