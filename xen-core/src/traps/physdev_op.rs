//! `physdev_op`: the virtual I/O privilege level a domain's kernel runs its port I/O with. Any
//! domain may set it, as on Xen: with it, port I/O is emulated (`emulate`), reaching real
//! ports only for dom0 and reading all ones (writes dropped) elsewhere.

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
            hc.ctx.iopl = op.iopl as u8;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
