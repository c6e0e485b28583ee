//! `sched_op`: yield, block, shutdown (and, with multiple domains, poll and remote shutdown).

use core::sync::atomic::Ordering;

use hypercall_abi::Errno;
use hypercall_abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD, SHUTDOWN_MAX,
    SchedShutdown,
};

use super::super::domain::{self, Domain, VI_UPCALL_MASK, VI_UPCALL_PENDING};
use super::super::sched;
use super::{Hc, HcResult, copy_in};

pub fn sched_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    match a[0] as u32 {
        SCHEDOP_YIELD => {
            sched::request_resched();
            Ok(Some(0))
        }
        SCHEDOP_BLOCK => {
            // Blocking re-enables event delivery; an event already pending means no sleep.
            Domain::vcpu_info_byte(hc.ctx, VI_UPCALL_MASK).store(0, Ordering::SeqCst);
            if Domain::vcpu_info_byte(hc.ctx, VI_UPCALL_PENDING).load(Ordering::SeqCst) == 0 {
                hc.vcpu.is_blocked.store(true, Ordering::SeqCst);
                // Re-check after publishing the blocked state: an event sent in between would
                // otherwise be a lost wake-up.
                if Domain::vcpu_info_byte(hc.ctx, VI_UPCALL_PENDING).load(Ordering::SeqCst) != 0 {
                    hc.vcpu.is_blocked.store(false, Ordering::SeqCst);
                }
                sched::request_resched();
            }
            Ok(Some(0))
        }
        SCHEDOP_SHUTDOWN => {
            let s: SchedShutdown = copy_in(a[1])?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            domain::shutdown(hc.dom, s.reason);
            Ok(Some(0))
        }
        SCHEDOP_SHUTDOWN_CODE => {
            let s: SchedShutdown = copy_in(a[1])?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
