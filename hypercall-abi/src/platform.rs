//! `platform_op` (hypercall 7): hardware-platform operations for the privileged domain
//! (`public/platform.h`). xen-core implements setting the wall clock (`XENPF_settime32/64`,
//! which a Linux dom0 calls to keep Xen's clock in step with its own); every other command is
//! `-ENOSYS`, which Linux tolerates.

use static_assertions::const_assert_eq;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENPF_INTERFACE_VERSION`: an envelope with another version is refused with `-EACCES`.
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
/// Set the wall clock, 32-bit seconds ([`Settime32`]).
pub const XENPF_SETTIME32: u32 = 17;
/// Set the wall clock, 64-bit seconds ([`Settime64`]).
pub const XENPF_SETTIME64: u32 = 62;

/// The `xen_platform_op` envelope (136 bytes): command, version, a 128-byte union.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PlatformOp {
    /// IN: `XENPF_*`.
    pub cmd: u32,
    /// IN: [`XENPF_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// IN/OUT: the command's struct.
    pub u: [u8; 128],
}

impl PlatformOp {
    /// An envelope for `cmd` carrying `op`.
    #[must_use]
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, op: &T) -> Self {
        let mut p = PlatformOp { cmd, interface_version: XENPF_INTERFACE_VERSION, u: [0; 128] };
        crate::domctl::put_union(&mut p.u, op);
        p
    }

    /// The union read as `T`.
    #[must_use]
    pub fn op<T: FromBytes>(&self) -> T {
        crate::domctl::get_union(&self.u)
    }
}

/// `xenpf_settime32`: the clock reads `secs.nsecs` (Unix time) when system time is
/// `system_time` (ns).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Settime32 {
    /// IN: seconds since the Unix epoch.
    pub secs: u32,
    /// IN: nanoseconds within the second.
    pub nsecs: u32,
    /// IN: the system time (ns since boot) at which the clock reads `secs.nsecs`.
    pub system_time: u64,
}

/// `xenpf_settime64`: as [`Settime32`] with 64-bit seconds; `mbz` must be zero (`-EINVAL`).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Settime64 {
    /// IN: seconds since the Unix epoch.
    pub secs: u64,
    /// IN: nanoseconds within the second.
    pub nsecs: u32,
    /// IN: must be zero.
    pub mbz: u32,
    /// IN: the system time (ns since boot) at which the clock reads `secs.nsecs`.
    pub system_time: u64,
}

const_assert_eq!(core::mem::size_of::<PlatformOp>(), 136);
const_assert_eq!(core::mem::size_of::<Settime32>(), 16);
const_assert_eq!(core::mem::size_of::<Settime64>(), 24);
const_assert_eq!(core::mem::offset_of!(Settime64, system_time), 16);
