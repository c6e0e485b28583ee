//! `physdev_op`: the I/O privilege level a domain's kernel runs its port I/O with. Only a
//! domain with I/O ports (dom0) can use it; the ports themselves are emulated (`emulate`).

use hypercall_abi::Errno;
use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};

use crate::hypercall::{Hc, HcResult, copy_in};

pub fn physdev_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    match a[0] as u32 {
        PHYSDEVOP_SET_IOPL => {
            let op: PhysdevSetIopl = copy_in(a[1])?;
            if op.iopl > 3 {
                return Err(Errno::EINVAL);
            }
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            hc.ctx.iopl = op.iopl as u8;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
