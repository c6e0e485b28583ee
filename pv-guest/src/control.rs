//! The guest's side of the toolstack's control nodes in XenStore, watched as Linux watches
//! them: `control/shutdown` (the toolstack writes `poweroff`, `reboot` or `halt`; the guest
//! acknowledges by clearing it, then shuts down with that reason, as `xl shutdown` expects)
//! and `memory/target` (the balloon's target, handed to `balloon`).
//!
//! A kernel calls [`poll`] when it wakes ([`crate::time::sleep_until`] does): it looks at the
//! watch events only if the XenStore client is free, so a wake-up inside a XenStore request
//! never waits for itself. The watches are set by the first poll, not at boot: setting them
//! costs two round trips to xenstored, which would otherwise delay the kernel's first line.

use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hypercall_abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

use crate::xenstore::{self, Store};
use crate::{balloon, println};

/// The last target seen (KiB); 0 before the first.
static LAST_TARGET: AtomicU64 = AtomicU64::new(0);
static SEEN_TARGET: AtomicBool = AtomicBool::new(false);

/// False the first time (the event a new watch fires at once), true after.
fn seen_target() -> bool {
    SEEN_TARGET.swap(true, Ordering::Relaxed)
}

const SHUTDOWN_TOKEN: &str = "control-shutdown";
const TARGET_TOKEN: &str = "memory-target";

/// The watches are set.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Acts on the control nodes that changed (the first call sets the watches; a domain without
/// a XenStore ring has nothing to do).
pub fn poll() {
    let Some(Some(action)) = xenstore::try_with(|xs| {
        if !WATCHING.swap(true, Ordering::Relaxed) {
            let _ = xs.watch("control/shutdown", SHUTDOWN_TOKEN);
            let _ = xs.watch("memory/target", TARGET_TOKEN);
        }
        let mut action = None;
        while let Some((_, token)) = xs.watch_event() {
            if token == SHUTDOWN_TOKEN {
                let v = xs.read_str(0, "control/shutdown").unwrap_or_default();
                let v = String::from(v.trim_end_matches('\0'));
                let reason = match v.as_str() {
                    "poweroff" | "halt" => Some(SHUTDOWN_POWEROFF),
                    "reboot" => Some(SHUTDOWN_REBOOT),
                    _ => None,
                };
                if let Some(r) = reason {
                    // The acknowledgement: the toolstack sees the node cleared.
                    let _ = xs.write(0, "control/shutdown", b"");
                    action = Some((v, r));
                }
            } else if token == TARGET_TOKEN {
                let t = xs.read_str(0, "memory/target").ok();
                if let Some(kib) =
                    t.and_then(|t| t.trim_end_matches('\0').trim().parse::<u64>().ok())
                {
                    let before = balloon::current_pages();
                    let now = balloon::set_target(kib);
                    // The first event (the watch being set) only says where things are.
                    if (LAST_TARGET.swap(kib, Ordering::Relaxed) != kib || now != before)
                        && seen_target()
                    {
                        println!("balloon: target {kib} KiB: {before} -> {now} pages");
                    }
                }
            }
        }
        action
    }) else {
        return;
    };
    let (what, reason) = action;
    println!("pv-guest: {what} requested by the toolstack");
    crate::shutdown(reason)
}
