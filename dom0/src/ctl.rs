//! dom0's side of domain control: thin wrappers over the `domctl` hypercall (list domains and
//! their state, destroy, pause, scheduling weights).

use alloc::vec::Vec;

use hypercall_abi::domctl::*;
use hypercall_abi::guest::raw;
use hypercall_abi::{DomId, Errno, nr};

/// Runs one domctl.
pub fn domctl(op: &mut Domctl) -> Result<(), Errno> {
    #[allow(unsafe_code)]
    // SAFETY: `op` is a complete domctl envelope the hypervisor reads and writes in place.
    let r = unsafe { raw::hypercall1(nr::DOMCTL, op as *mut Domctl as u64) };
    hypercall_abi::ret_to_result(r).map(|_| ())
}

/// Every live domain, in id order.
pub fn domains() -> Vec<GetDomainInfo> {
    let mut out = Vec::new();
    let mut next = 0u16;
    loop {
        let mut op = Domctl::new(XEN_DOMCTL_GETDOMAININFO, DomId(next), &GetDomainInfo::default());
        if domctl(&mut op).is_err() {
            return out;
        }
        let info: GetDomainInfo = op.op();
        next = info.domain.0 + 1;
        out.push(info);
    }
}

fn simple(cmd: u32, dom: DomId) -> Result<(), Errno> {
    domctl(&mut Domctl::new(cmd, dom, &[0u8; 0]))
}

pub fn destroy(dom: DomId) -> Result<(), Errno> {
    simple(XEN_DOMCTL_DESTROYDOMAIN, dom)
}

pub fn pause(dom: DomId) -> Result<(), Errno> {
    simple(XEN_DOMCTL_PAUSEDOMAIN, dom)
}

pub fn unpause(dom: DomId) -> Result<(), Errno> {
    simple(XEN_DOMCTL_UNPAUSEDOMAIN, dom)
}

/// (weight, cap) of a domain.
pub fn sched_get(dom: DomId) -> Result<(u16, u16), Errno> {
    let q = SchedulerOp {
        sched_id: XEN_SCHEDULER_CREDIT,
        cmd: XEN_DOMCTL_SCHEDOP_GETINFO,
        ..Default::default()
    };
    let mut op = Domctl::new(XEN_DOMCTL_SCHEDULER_OP, dom, &q);
    domctl(&mut op)?;
    let s: SchedulerOp = op.op();
    Ok((s.weight, s.cap))
}

pub fn sched_put(dom: DomId, weight: u16, cap: u16) -> Result<(), Errno> {
    let q = SchedulerOp {
        sched_id: XEN_SCHEDULER_CREDIT,
        cmd: XEN_DOMCTL_SCHEDOP_PUTINFO,
        weight,
        cap,
        _pad: 0,
    };
    domctl(&mut Domctl::new(XEN_DOMCTL_SCHEDULER_OP, dom, &q))
}
