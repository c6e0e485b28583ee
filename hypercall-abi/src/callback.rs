//! `callback_op` (hypercall 30): register the entry points the hypervisor bounces to for
//! events, failsafe returns, guest-user `syscall` and NMIs. The older `set_callbacks`
//! hypercall (4) sets the first three in one go.

use crate::types::VAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `callback_op` command: register a callback ([`CallbackRegister`]).
pub const CALLBACKOP_REGISTER: u32 = 0;
/// `callback_op` command: unregister a callback ([`CallbackUnregister`]).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

/// Event upcall: entered with a bounce frame when `evtchn_upcall_pending` is set and unmasked.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Failsafe: entered when the hypervisor cannot restore the guest's segment state on return.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `syscall` from 64-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Old sysenter number (pre-3.0.7).
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// NMI delivery.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `sysenter` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// `syscall` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// `CallbackRegister::flags`: mask events (set `evtchn_upcall_mask`) while the callback runs.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// Argument of `CALLBACKOP_register` (16 bytes). Written by the guest.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct CallbackRegister {
    /// IN: `CALLBACKTYPE_*` (C field `type`).
    pub kind: u16,
    /// IN: `CALLBACKF_*`.
    pub flags: u16,
    /// Padding.
    pub _pad: u32,
    /// IN: entry address (guest virtual).
    pub address: VAddr,
}

impl CallbackRegister {
    /// Register `address` as the `CALLBACKTYPE_*` `kind` entry with `CALLBACKF_*` `flags`.
    #[must_use]
    pub const fn new(kind: u16, flags: u16, address: VAddr) -> Self {
        Self { kind, flags, _pad: 0, address }
    }
}

/// Argument of `CALLBACKOP_unregister` (4 bytes). Written by the guest.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct CallbackUnregister {
    /// IN: `CALLBACKTYPE_*` (C field `type`).
    pub kind: u16,
    /// Unused, must be zero.
    pub _unused: u16,
}

crate::assert_layout!(CallbackRegister, size = 16, kind = 0, flags = 2, address = 8);
crate::assert_layout!(CallbackUnregister, size = 4, kind = 0);
