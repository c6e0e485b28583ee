//! `platform_op` (hypercall 7), the part xen-core has: the privileged domain sets the wall
//! clock (`XENPF_settime32/64`). A Linux dom0 does so at boot and every 11 minutes; on
//! failure it retries on every timekeeping update, so `-ENOSYS` here would mean a hypercall
//! (and a log line) twice a second forever. Checks in Xen 4.17's order: the envelope is
//! copied (`-EFAULT`), its version checked (`-EACCES`), then the caller's privilege (`-EPERM`).

use hypercall_abi::Errno;
use hypercall_abi::platform::{
    PlatformOp, Settime32, Settime64, XENPF_INTERFACE_VERSION, XENPF_SETTIME32, XENPF_SETTIME64,
};

use super::clock;
use crate::hypercall::{Hc, HcResult, copy_in};

pub fn platform_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let op: PlatformOp = copy_in(a[0])?;
    if op.interface_version != XENPF_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    if !hc.dom.is_privileged {
        return Err(Errno::EPERM);
    }
    match op.cmd {
        XENPF_SETTIME32 => {
            let t: Settime32 = op.op();
            clock::settime(u64::from(t.secs), t.nsecs, t.system_time);
            Ok(Some(0))
        }
        XENPF_SETTIME64 => {
            let t: Settime64 = op.op();
            if t.mbz != 0 {
                return Err(Errno::EINVAL);
            }
            clock::settime(t.secs, t.nsecs, t.system_time);
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
