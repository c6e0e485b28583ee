//! `sched_op` (hypercall 29): yield, block, shut down, poll ports, and the watchdog.
//!
//! `SCHEDOP_block` re-enables event delivery (clears `evtchn_upcall_mask`) and returns at once
//! if an event is already pending, so "mask; check for work; block" has no lost-wakeup window.

use crate::types::{DomId, EvtchnPort, GuestHandle};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Give up the CPU; arg NULL.
pub const SCHEDOP_YIELD: u32 = 0;
/// Sleep until an event is pending; arg NULL.
pub const SCHEDOP_BLOCK: u32 = 1;
/// Shut the calling domain down: arg [`SchedShutdown`]. For `SHUTDOWN_suspend` rdx carries the
/// start_info MFN, and the call returns 1 if the suspend was cancelled.
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Wait until one of a set of ports is pending or a timeout passes: arg [`SchedPoll`].
pub const SCHEDOP_POLL: u32 = 3;
/// Shut down another domain (privileged): arg [`SchedRemoteShutdown`].
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Latch the shutdown code reported later: arg [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Set up, poke or destroy a domain watchdog: arg [`SchedWatchdog`].
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Temporarily pin the vCPU to a physical CPU (hardware domain): arg [`SchedPinOverride`].
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Normal exit: clean up and destroy.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Clean up, destroy and restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Save state for later resume.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// The guest crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// The watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Reset hypervisor state for the domain but keep memory and vCPU contexts.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// Largest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// A shutdown reason as a guest names it: the typed form of the `SHUTDOWN_*` values, for
/// [`SchedShutdown::new`] and the guest wrapper `sched_shutdown`. The wire field stays a `u32`
/// (the hypervisor must cope with any value a guest writes); [`ShutdownReason::from_raw`]
/// decodes one.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`: normal exit.
    Poweroff = SHUTDOWN_POWEROFF,
    /// `SHUTDOWN_reboot`: restart.
    Reboot = SHUTDOWN_REBOOT,
    /// `SHUTDOWN_suspend`: save state for later resume (needs the start_info MFN in rdx).
    Suspend = SHUTDOWN_SUSPEND,
    /// `SHUTDOWN_crash`: the guest crashed.
    Crash = SHUTDOWN_CRASH,
    /// `SHUTDOWN_watchdog`: the watchdog expired.
    Watchdog = SHUTDOWN_WATCHDOG,
    /// `SHUTDOWN_soft_reset`: reset hypervisor state, keep memory.
    SoftReset = SHUTDOWN_SOFT_RESET,
}

impl ShutdownReason {
    /// The wire value.
    #[must_use]
    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// Decodes a wire value; `None` above [`SHUTDOWN_MAX`].
    #[must_use]
    pub const fn from_raw(reason: u32) -> Option<Self> {
        Some(match reason {
            SHUTDOWN_POWEROFF => Self::Poweroff,
            SHUTDOWN_REBOOT => Self::Reboot,
            SHUTDOWN_SUSPEND => Self::Suspend,
            SHUTDOWN_CRASH => Self::Crash,
            SHUTDOWN_WATCHDOG => Self::Watchdog,
            SHUTDOWN_SOFT_RESET => Self::SoftReset,
            _ => return None,
        })
    }
}

/// Name of a shutdown reason, for logs.
#[must_use]
pub const fn shutdown_reason_name(reason: u32) -> Option<&'static str> {
    Some(match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_SUSPEND => "suspend",
        SHUTDOWN_CRASH => "crash",
        SHUTDOWN_WATCHDOG => "watchdog",
        SHUTDOWN_SOFT_RESET => "soft_reset",
        _ => return None,
    })
}

/// Argument of `SCHEDOP_shutdown` / `SCHEDOP_shutdown_code` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedShutdown {
    /// IN: `SHUTDOWN_*`.
    pub reason: u32,
}

impl SchedShutdown {
    /// The argument for `reason`.
    #[must_use]
    pub const fn new(reason: ShutdownReason) -> Self {
        Self { reason: reason.raw() }
    }
}

/// Argument of `SCHEDOP_poll` (24 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedPoll {
    /// IN: guest handle of an array of `evtchn_port_t` (u32).
    pub ports: GuestHandle<EvtchnPort>,
    /// IN: number of ports in the array.
    pub nr_ports: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: absolute system time (ns) to give up at; 0 = no timeout.
    pub timeout: u64,
}

/// Argument of `SCHEDOP_remote_shutdown` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedRemoteShutdown {
    /// IN: domain to shut down.
    pub domain_id: DomId,
    /// Padding.
    pub _pad: u16,
    /// IN: `SHUTDOWN_*`.
    pub reason: u32,
}

/// Argument of `SCHEDOP_watchdog` (8 bytes). id 0 creates (returns the id); id != 0 with
/// timeout 0 destroys; otherwise pokes with a new timeout.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedWatchdog {
    /// IN: watchdog id (0 = create).
    pub id: u32,
    /// IN: timeout in seconds.
    pub timeout: u32,
}

/// Argument of `SCHEDOP_pin_override` (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedPinOverride {
    /// IN: physical CPU, or negative to undo the override.
    pub pcpu: i32,
}

crate::assert_layout!(SchedShutdown, size = 4, reason = 0);
crate::assert_layout!(SchedPoll, size = 24, ports = 0, nr_ports = 8, timeout = 16);
crate::assert_layout!(SchedRemoteShutdown, size = 8, domain_id = 0, reason = 4);
crate::assert_layout!(SchedWatchdog, size = 8, id = 0, timeout = 4);
crate::assert_layout!(SchedPinOverride, size = 4, pcpu = 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_reasons_round_trip() {
        for r in 0..=SHUTDOWN_MAX {
            let typed = ShutdownReason::from_raw(r).unwrap();
            assert_eq!(typed.raw(), r);
            assert_eq!(SchedShutdown::new(typed).reason, r);
            assert!(shutdown_reason_name(r).is_some());
        }
        assert_eq!(ShutdownReason::from_raw(SHUTDOWN_MAX + 1), None);
        assert_eq!(ShutdownReason::Crash.raw(), SHUTDOWN_CRASH);
    }
}
