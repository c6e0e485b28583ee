//! `sched_op`: yield, block, poll, shutdown (own or, for dom0, another domain's).

use core::sync::atomic::Ordering;

use hypercall_abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_REMOTE_SHUTDOWN, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE,
    SCHEDOP_YIELD, SHUTDOWN_MAX, SchedPoll, SchedRemoteShutdown, SchedShutdown,
};
use hypercall_abi::{Errno, EvtchnPort};

use super::timer;
use crate::domain::{self, MAX_POLL_PORTS, PollSet, VI_UPCALL_MASK, VI_UPCALL_PENDING, lifecycle};
use crate::event;
use crate::hypercall::{Hc, HcResult, copy_in};
use crate::sched;

pub fn sched_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    match a[0] as u32 {
        SCHEDOP_YIELD => {
            sched::yield_current();
            Ok(Some(0))
        }
        SCHEDOP_BLOCK => {
            // Blocking re-enables event delivery; an event already pending means no sleep.
            hc.vcpu.info_byte(VI_UPCALL_MASK).store(0, Ordering::SeqCst);
            if hc.vcpu.info_byte(VI_UPCALL_PENDING).load(Ordering::SeqCst) == 0 {
                sched::block(hc.vcpu);
                // Re-check after publishing the blocked state: an event set pending in between
                // would otherwise be a lost wake-up.
                if hc.vcpu.info_byte(VI_UPCALL_PENDING).load(Ordering::SeqCst) != 0 {
                    sched::wake(hc.vcpu);
                }
            }
            Ok(Some(0))
        }
        SCHEDOP_POLL => poll(hc, a[1]),
        SCHEDOP_SHUTDOWN => {
            let s: SchedShutdown = copy_in(a[1])?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            lifecycle::shutdown(hc.dom, s.reason);
            Ok(Some(0))
        }
        SCHEDOP_SHUTDOWN_CODE => {
            let s: SchedShutdown = copy_in(a[1])?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            Ok(Some(0))
        }
        SCHEDOP_REMOTE_SHUTDOWN => {
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            let s: SchedRemoteShutdown = copy_in(a[1])?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            let d = domain::get(s.domain_id).ok_or(Errno::ESRCH)?;
            lifecycle::shutdown(&d, s.reason);
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// SCHEDOP_poll: sleep until one of the ports is pending (masked or not) or the timeout.
fn poll(hc: &mut Hc<'_>, arg: u64) -> HcResult {
    let p: SchedPoll = copy_in(arg)?;
    if p.nr_ports as usize > MAX_POLL_PORTS {
        return Err(Errno::EINVAL);
    }
    let mut ports = [EvtchnPort(0); MAX_POLL_PORTS];
    let n = p.nr_ports as usize;
    for (i, slot) in ports[..n].iter_mut().enumerate() {
        let port: u32 = copy_in(p.ports.raw() + i as u64 * 4)?;
        if port >= hypercall_abi::shared_info::NR_EVENT_CHANNELS {
            return Err(Errno::EINVAL);
        }
        *slot = EvtchnPort(port);
    }
    let ports = &ports[..n];
    *hc.vcpu.poll.lock() = Some(PollSet::new(ports));
    sched::block(hc.vcpu);
    // Anything already pending (including what arrived while we registered) ends the poll.
    if ports.iter().any(|&port| event::is_pending(hc.dom, port)) {
        *hc.vcpu.poll.lock() = None;
        sched::wake(hc.vcpu);
        return Ok(Some(0));
    }
    if p.timeout != 0 {
        hc.vcpu.poll_deadline.store(p.timeout, Ordering::Release);
        timer::deadline_added(p.timeout);
    }
    Ok(Some(0))
}
