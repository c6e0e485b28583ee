//! Error numbers. Xen returns `-errno` in rax, with the x86 Linux numbering (`errno.h` in Xen's
//! public headers), and XenStore sends error *names* (`"ENOENT"`) in `XS_ERROR` payloads.
//!
//! A return value is an error when it is in `-4095..=-1` (Linux's `MAX_ERRNO` convention, which
//! Xen shares): anything below that is a successful 64-bit value that happens to have the top bit
//! set, e.g. an address in the upper half.

use core::fmt;

/// An errno value, positive (`Errno::EINVAL.0 == 22`); hypercalls return its negation.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Errno(pub i32);

/// Result of a hypercall: the non-negative return value, or the error.
pub type HcResult = Result<u64, Errno>;

/// Largest errno a return value can carry.
pub const MAX_ERRNO: i64 = 4095;

macro_rules! errnos {
    ($($(#[$m:meta])* $name:ident = $val:expr;)*) => {
        impl Errno {
            $($(#[$m])* pub const $name: Errno = Errno($val);)*
        }

        const NAMES: &[(Errno, &str)] = &[$((Errno::$name, stringify!($name)),)*];
    };
}

errnos! {
    /// Operation not permitted.
    EPERM = 1;
    /// No such file or directory (XenStore: no such node).
    ENOENT = 2;
    /// No such process (Xen: no such domain).
    ESRCH = 3;
    /// Interrupted. Xen-internal: never returned to a guest.
    EINTR = 4;
    /// I/O error.
    EIO = 5;
    /// No such device or address.
    ENXIO = 6;
    /// Argument list too long.
    E2BIG = 7;
    /// Exec format error (bad kernel image).
    ENOEXEC = 8;
    /// Bad file number (bad handle).
    EBADF = 9;
    /// No child processes.
    ECHILD = 10;
    /// Try again (also `EWOULDBLOCK`).
    EAGAIN = 11;
    /// Out of memory.
    ENOMEM = 12;
    /// Permission denied.
    EACCES = 13;
    /// Bad address: a guest pointer could not be read or written.
    EFAULT = 14;
    /// Device or resource busy.
    EBUSY = 16;
    /// Already exists.
    EEXIST = 17;
    /// Cross-device link.
    EXDEV = 18;
    /// No such device.
    ENODEV = 19;
    /// Is a directory. Not in Xen's `errno.h`; XenStore uses the name.
    EISDIR = 21;
    /// Invalid argument.
    EINVAL = 22;
    /// File table overflow.
    ENFILE = 23;
    /// Too many open files.
    EMFILE = 24;
    /// No space left.
    ENOSPC = 28;
    /// Illegal seek. Not in Xen's `errno.h` (Linux number).
    ESPIPE = 29;
    /// Read-only. Not in Xen's `errno.h`; XenStore uses the name.
    EROFS = 30;
    /// Too many links.
    EMLINK = 31;
    /// Argument out of domain.
    EDOM = 33;
    /// Result out of range.
    ERANGE = 34;
    /// Deadlock would occur (also `EDEADLOCK`).
    EDEADLK = 35;
    /// Name too long.
    ENAMETOOLONG = 36;
    /// No locks available.
    ENOLCK = 37;
    /// Function not implemented: unknown hypercall or sub-op.
    ENOSYS = 38;
    /// Directory not empty. Not in Xen's `errno.h`; XenStore uses the name.
    ENOTEMPTY = 39;
    /// Invalid request code.
    EBADRQC = 56;
    /// Invalid slot.
    EBADSLT = 57;
    /// No data available.
    ENODATA = 61;
    /// Timer expired (e.g. a single-shot timer already in the past).
    ETIME = 62;
    /// Not a data message.
    EBADMSG = 74;
    /// Value too large for the type.
    EOVERFLOW = 75;
    /// Illegal byte sequence.
    EILSEQ = 84;
    /// Restart the call. Xen-internal: never returned to a guest.
    ERESTART = 85;
    /// Too many users.
    EUSERS = 87;
    /// Not a socket.
    ENOTSOCK = 88;
    /// Operation not supported.
    EOPNOTSUPP = 95;
    /// Address in use.
    EADDRINUSE = 98;
    /// Address not available.
    EADDRNOTAVAIL = 99;
    /// No buffer space.
    ENOBUFS = 105;
    /// Already connected.
    EISCONN = 106;
    /// Not connected.
    ENOTCONN = 107;
    /// Endpoint shut down.
    ESHUTDOWN = 108;
    /// Too many references.
    ETOOMANYREFS = 109;
    /// Timed out.
    ETIMEDOUT = 110;
}

impl Errno {
    /// Alias of [`Errno::EAGAIN`].
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// Alias of [`Errno::EDEADLK`].
    pub const EDEADLOCK: Errno = Errno::EDEADLK;

    /// The value a hypercall returns in rax for this error (negative).
    #[must_use]
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }

    /// The error a hypercall return value carries, if it is one (`-4095..=-1`).
    #[must_use]
    pub const fn from_ret(ret: i64) -> Option<Errno> {
        if ret < 0 && ret >= -MAX_ERRNO { Some(Errno((-ret) as i32)) } else { None }
    }

    /// The symbolic name (`"EFAULT"`), as XenStore writes it in `XS_ERROR` payloads.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(e, _)| *e == self).map(|(_, n)| *n)
    }

    /// The errno with symbolic name `name` (e.g. parsed from an `XS_ERROR` payload).
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Errno> {
        NAMES.iter().find(|(_, n)| n.as_bytes() == name).map(|(e, _)| *e)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// Split a raw hypercall return value into success or error.
pub const fn ret_to_result(ret: i64) -> HcResult {
    match Errno::from_ret(ret) {
        Some(e) => Err(e),
        None => Ok(ret as u64),
    }
}

/// The raw return value for a result (what the hypervisor puts in the guest's rax).
#[must_use]
pub const fn result_to_ret(r: HcResult) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => e.to_ret(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen() {
        assert_eq!(Errno::EPERM.0, 1);
        assert_eq!(Errno::EFAULT.0, 14);
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::ENOSYS.0, 38);
        assert_eq!(Errno::ERESTART.0, 85);
        assert_eq!(Errno::ETIMEDOUT.0, 110);
    }

    #[test]
    fn ret_conversions() {
        assert_eq!(Errno::EFAULT.to_ret(), -14);
        assert_eq!(Errno::from_ret(-14), Some(Errno::EFAULT));
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(5), None);
        assert_eq!(Errno::from_ret(-4095), Some(Errno(4095)));
        assert_eq!(Errno::from_ret(-4096), None);
        assert_eq!(ret_to_result(-22), Err(Errno::EINVAL));
        assert_eq!(ret_to_result(7), Ok(7));
        // An upper-half address is a value, not an error.
        let va = 0xFFFF_8000_0000_0000u64 as i64;
        assert_eq!(ret_to_result(va), Ok(0xFFFF_8000_0000_0000));
        assert_eq!(result_to_ret(Err(Errno::ENOMEM)), -12);
        assert_eq!(result_to_ret(Ok(3)), 3);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Errno::EFAULT.name(), Some("EFAULT"));
        assert_eq!(Errno::from_name(b"ENOENT"), Some(Errno::ENOENT));
        assert_eq!(Errno::from_name(b"EWHAT"), None);
        assert_eq!(Errno(1000).name(), None);
        for (e, n) in NAMES {
            assert_eq!(Errno::from_name(n.as_bytes()), Some(*e));
        }
    }
}
