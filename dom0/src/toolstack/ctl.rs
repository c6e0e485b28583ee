//! dom0's side of domain control: thin wrappers over the `domctl` hypercall (list domains and
//! their state, create, destroy, unpause, scheduling weights, memory).

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

/// Free and total machine frames (sysctl physinfo).
pub fn physinfo() -> Result<hypercall_abi::sysctl::Physinfo, Errno> {
    use hypercall_abi::sysctl::{Sysctl, XEN_SYSCTL_PHYSINFO};
    let mut op = Sysctl::new(XEN_SYSCTL_PHYSINFO);
    #[allow(unsafe_code)]
    // SAFETY: `op` is a complete sysctl envelope the hypervisor reads and writes in place.
    let r = unsafe { raw::hypercall1(nr::SYSCTL, &mut op as *mut Sysctl as u64) };
    hypercall_abi::ret_to_result(r)?;
    Ok(op.op())
}

/// Creates an empty, paused domain; returns its id.
pub fn create() -> Result<DomId, Errno> {
    let mut op = Domctl::new(XEN_DOMCTL_CREATEDOMAIN, DomId(0), &[0u8; 0]);
    domctl(&mut op)?;
    Ok(op.domain)
}

/// Sets a domain's memory ceiling.
pub fn max_mem(dom: DomId, kib: u64) -> Result<(), Errno> {
    domctl(&mut Domctl::new(XEN_DOMCTL_MAX_MEM, dom, &MaxMem { max_memkb: kib }))
}

/// Gives `dom` `count` fresh frames at pseudo-physical frames 0..count; returns how many.
pub fn populate(dom: DomId, count: u64) -> Result<u64, Errno> {
    use hypercall_abi::memory::{XENMEM_POPULATE_PHYSMAP, XenMemoryReservation};
    let mut frames: Vec<u64> = (0..count).collect();
    let mut r = XenMemoryReservation {
        extent_start: hypercall_abi::GuestHandle::from_raw(frames.as_mut_ptr() as u64),
        nr_extents: count,
        extent_order: 0,
        mem_flags: 0,
        domid: dom,
        _pad: [0; 6],
    };
    #[allow(unsafe_code)]
    // SAFETY: `r` is XENMEM_populate_physmap's argument and the `frames` array it names is
    // live for the call; the frames go to `dom`, not into this kernel's memory.
    unsafe {
        hypercall_abi::guest::memory_op(XENMEM_POPULATE_PHYSMAP, &mut r)
    }
}
