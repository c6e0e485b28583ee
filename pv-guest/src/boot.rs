//! From `_start` to the kernel's main: check start_info, bring up the heap, the console log and
//! the trap table, then call the function named with [`crate::kernel_main!`]. Also what the
//! kernel learns at boot (start_info, its command line, [`print_start_info`]) and its way out:
//! `shutdown` and the panic handler.

use hypercall_abi::guest;
use hypercall_abi::start_info::StartInfo;
use zerocopy::FromBytes;

use crate::println;

#[allow(unsafe_code)]
unsafe extern "Rust" {
    fn pv_kernel_main(si: &'static StartInfo) -> !;
}

static START_INFO: spin::Once<&'static StartInfo> = spin::Once::new();

/// The domain's start_info (valid once the kernel's main runs).
pub fn start_info() -> &'static StartInfo {
    START_INFO.get().expect("start_info is set before main")
}

pub(crate) fn start(si_va: u64) -> ! {
    crate::memory::heap::init();
    crate::console::init_log(log::LevelFilter::Info);
    let si = crate::memory::shared::start_info_at(si_va);
    if !si.has_valid_magic() {
        println!("guest: start_info at {si_va:#x} has no Xen magic");
        shutdown(hypercall_abi::sched::SHUTDOWN_CRASH);
    }
    START_INFO.call_once(|| si);
    crate::traps::install();
    crate::memory::pages::init(si);
    crate::events::init(si);
    if let Err(s) = crate::grant::init() {
        println!("guest: grant table setup failed: {s}");
    }
    // A domU talks to xenstored and prints through its PV console from here on.
    if !si.is_initdomain() {
        let _ = crate::xenstore::init(si);
        crate::console::use_ring(si);
    }
    #[allow(unsafe_code)]
    // SAFETY: the kernel defines `pv_kernel_main` through `kernel_main!`, with this signature.
    unsafe {
        pv_kernel_main(si)
    }
}

/// Shuts the domain down with a SHUTDOWN_* reason. Never returns.
pub fn shutdown(reason: u32) -> ! {
    loop {
        let _ = hypercall_abi::sched::ShutdownReason::from_raw(reason).map(guest::sched_shutdown);
        // Only a broken hypervisor returns here; keep asking.
        let _ = guest::sched_yield();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::console::emergency_print(format_args!("guest panic: {info}\n"));
    shutdown(hypercall_abi::sched::SHUTDOWN_CRASH)
}

/// Parses a `key=value` word from the kernel command line.
pub fn cmdline_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses `key=value` from the command line as a `T`; `default` when absent or malformed.
pub fn cmdline_param<T: core::str::FromStr>(line: &str, key: &str, default: T) -> T {
    cmdline_value(line, key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The kernel command line as text (lossy: invalid UTF-8 gives "").
pub fn cmdline(si: &StartInfo) -> &str {
    core::str::from_utf8(si.cmdline()).unwrap_or("")
}

/// Prints a start_info summary and the hypervisor version, prefixed with `who`.
pub fn print_start_info(who: &str, si: &StartInfo) {
    let (major, minor) = guest::version().unwrap_or((0, 0));
    let magic = core::str::from_utf8(&si.magic[..14]).unwrap_or("?");
    println!("{who}: hypervisor {major}.{minor}, start_info magic '{magic}'");
    println!(
        "{who}: nr_pages {} ({} MiB), shared_info {:#x}, flags {:#x}{}{}",
        si.nr_pages,
        si.nr_pages / 256,
        si.shared_info.0,
        si.flags,
        if si.is_privileged() { " PRIVILEGED" } else { "" },
        if si.is_initdomain() { " INITDOMAIN" } else { "" }
    );
    println!(
        "{who}: pt_base {:#x} ({} frames), mfn_list {:#x}, store mfn {:#x} evtchn {}, console mfn {:#x} evtchn {}",
        si.pt_base.0,
        si.nr_pt_frames,
        si.mfn_list.0,
        si.store_mfn.0,
        si.store_evtchn.0,
        si.console.domu().mfn.0,
        si.console.domu().evtchn.0
    );
    println!("{who}: module {:#x} ({} bytes), cmdline '{}'", si.mod_start, si.mod_len, cmdline(si));
}

#[allow(dead_code)]
fn _assert_frombytes() {
    fn f<T: FromBytes>() {}
    f::<StartInfo>();
}
