//! dom0's side of domain control: thin wrappers over the `domctl` hypercall (list domains and
//! their state, create, destroy, pause, unpause, vCPUs and their state, scheduling weights,
//! memory), `sysctl` (physinfo, the boot domUs and their modules), and the memory and MMU ops
//! a builder makes on another domain's behalf (populate its memory, pin its L4).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::domctl::*;
use hypercall_abi::guest::raw;
use hypercall_abi::sysctl::{BootDomu, BootModule, Sysctl};
use hypercall_abi::vcpu::VcpuGuestContext;
use hypercall_abi::{DomId, Errno, Mfn, nr};
use zerocopy::FromZeros;

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

/// Waits (two seconds at most) until `dom` has left the hypervisor's domain table: a
/// destroyed domain goes once no CPU runs it.
pub fn wait_gone(dom: DomId) {
    use pv_guest::time;
    let until = time::now_ns() + 2_000_000_000;
    while domain_info(dom).is_ok() && time::now_ns() < until {
        time::sleep_ns(1_000_000);
    }
}

pub fn unpause(dom: DomId) -> Result<(), Errno> {
    simple(XEN_DOMCTL_UNPAUSEDOMAIN, dom)
}

pub fn pause(dom: DomId) -> Result<(), Errno> {
    simple(XEN_DOMCTL_PAUSEDOMAIN, dom)
}

/// What the hypervisor says of domain `dom` (`ESRCH` if there is none).
pub fn domain_info(dom: DomId) -> Result<GetDomainInfo, Errno> {
    let mut op = Domctl::new(XEN_DOMCTL_GETDOMAININFO, dom, &GetDomainInfo::default());
    domctl(&mut op)?;
    let info: GetDomainInfo = op.op();
    if info.domain != dom {
        return Err(Errno::ESRCH);
    }
    Ok(info)
}

/// Sets (weight, cap) of a domain.
pub fn sched_set(dom: DomId, weight: u16, cap: u16) -> Result<(), Errno> {
    let q = SchedulerOp {
        sched_id: XEN_SCHEDULER_CREDIT,
        cmd: XEN_DOMCTL_SCHEDOP_PUTINFO,
        weight,
        cap,
        ..Default::default()
    };
    domctl(&mut Domctl::new(XEN_DOMCTL_SCHEDULER_OP, dom, &q))
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
    let mut op = Sysctl::new(hypercall_abi::sysctl::XEN_SYSCTL_PHYSINFO);
    sysctl(&mut op)?;
    Ok(op.op())
}

/// Creates an empty, paused PV domain of one vCPU named `name` (its first 16 bytes: the
/// handle; the hypervisor names it `domain-<id>` if empty); returns its id.
pub fn create_named(name: &str) -> Result<DomId, Errno> {
    let mut handle = [0u8; 16];
    let n = name.len().min(16);
    handle[..n].copy_from_slice(&name.as_bytes()[..n]);
    let c = CreateDomain {
        handle,
        max_vcpus: 1,
        max_grant_frames: -1,
        max_maptrack_frames: -1,
        grant_opts: 1,
        ..Default::default()
    };
    let mut op = Domctl::new(XEN_DOMCTL_CREATEDOMAIN, DomId(0), &c);
    domctl(&mut op)?;
    Ok(op.domain)
}

/// Creates an empty, paused, unnamed domain; returns its id.
pub fn create() -> Result<DomId, Errno> {
    create_named("")
}

/// Confirms the domain's vCPU count (as Xen's builders do after createdomain).
pub fn max_vcpus(dom: DomId, max: u32) -> Result<(), Errno> {
    domctl(&mut Domctl::new(XEN_DOMCTL_MAX_VCPUS, dom, &MaxVcpus { max }))
}

/// Loads vCPU 0's state (registers, CR3, ...); it is up afterwards.
pub fn set_vcpu_context(dom: DomId, ctx: &VcpuGuestContext) -> Result<(), Errno> {
    let o = VcpuContextOp { vcpu: 0, _pad: 0, ctxt: ctx as *const VcpuGuestContext as u64 };
    domctl(&mut Domctl::new(XEN_DOMCTL_SETVCPUCONTEXT, dom, &o))
}

/// vCPU 0's state.
pub fn vcpu_context(dom: DomId) -> Result<Box<VcpuGuestContext>, Errno> {
    let mut ctx = Box::new(VcpuGuestContext::new_zeroed());
    let o = VcpuContextOp { vcpu: 0, _pad: 0, ctxt: &mut *ctx as *mut VcpuGuestContext as u64 };
    domctl(&mut Domctl::new(XEN_DOMCTL_GETVCPUCONTEXT, dom, &o))?;
    Ok(ctx)
}

/// Pins `dom`'s page table at `mfn` as an L4 (the builder's bootstrap tables), validated as
/// the domain's own.
pub fn pin_l4(dom: DomId, mfn: Mfn) -> Result<(), Errno> {
    let op = hypercall_abi::mmu::MmuextOp::pin(4, mfn).ok_or(Errno::EINVAL)?;
    #[allow(unsafe_code)]
    // SAFETY: pinning another domain's table changes none of this kernel's mappings.
    let (r, _) = unsafe { hypercall_abi::guest::mmuext_op(&[op], dom) };
    r.map(|_| ())
}

/// Shuts `dom` down as if it had asked to, with a `SHUTDOWN_*` reason.
pub fn remote_shutdown(dom: DomId, reason: u32) -> Result<(), Errno> {
    use hypercall_abi::sched::{SCHEDOP_REMOTE_SHUTDOWN, SchedRemoteShutdown};
    let mut arg = SchedRemoteShutdown { domain_id: dom, reason, ..Default::default() };
    #[allow(unsafe_code)]
    // SAFETY: `arg` is SCHEDOP_remote_shutdown's argument, live for the call.
    let r = unsafe {
        raw::hypercall2(nr::SCHED_OP, u64::from(SCHEDOP_REMOTE_SHUTDOWN), &mut arg as *mut _ as u64)
    };
    hypercall_abi::ret_to_result(r).map(|_| ())
}

fn sysctl(op: &mut Sysctl) -> Result<(), Errno> {
    #[allow(unsafe_code)]
    // SAFETY: `op` is a complete sysctl envelope the hypervisor reads and writes in place; the
    // buffers its op names are live for the call.
    let r = unsafe { raw::hypercall1(nr::SYSCTL, op as *mut Sysctl as u64) };
    hypercall_abi::ret_to_result(r).map(|_| ())
}

/// The `index`-th domU of the hypervisor's command line, if there is one.
pub fn boot_domu(index: u32) -> Option<BootDomu> {
    let mut op = Sysctl::new(hypercall_abi::sysctl::XEN_SYSCTL_BOOT_DOMU);
    op.set_op(&BootDomu { index, ..Default::default() });
    sysctl(&mut op).ok()?;
    Some(op.op())
}

/// Copies boot module `index` from `offset` into `buf` (as much as one call gives); returns
/// (the module's size, bytes copied).
pub fn boot_module_read(index: u32, offset: u64, buf: &mut [u8]) -> Result<(u64, u64), Errno> {
    let mut op = Sysctl::new(hypercall_abi::sysctl::XEN_SYSCTL_BOOT_MODULE);
    let b = BootModule {
        index,
        offset,
        buffer: buf.as_mut_ptr() as u64,
        len: buf.len() as u64,
        ..Default::default()
    };
    op.set_op(&b);
    sysctl(&mut op)?;
    let r: BootModule = op.op();
    Ok((r.size, r.len))
}

/// Boot module `index`'s size and arguments (what follows its name on the boot loader's line).
pub fn boot_module_info(index: u32) -> Result<(u64, String), Errno> {
    let mut args = alloc::vec![0u8; 1024];
    let mut op = Sysctl::new(hypercall_abi::sysctl::XEN_SYSCTL_BOOT_MODULE);
    let b = BootModule {
        index,
        cmdline: args.as_mut_ptr() as u64,
        cmdline_len: args.len() as u64,
        ..Default::default()
    };
    op.set_op(&b);
    sysctl(&mut op)?;
    let r: BootModule = op.op();
    args.truncate(r.cmdline_len.min(1024) as usize);
    Ok((r.size, String::from_utf8_lossy(&args).into_owned()))
}

/// Sets a domain's memory ceiling.
pub fn max_mem(dom: DomId, kib: u64) -> Result<(), Errno> {
    domctl(&mut Domctl::new(XEN_DOMCTL_MAX_MEM, dom, &MaxMem { max_memkb: kib }))
}

/// Gives `dom` `count` fresh frames at pseudo-physical frames 0..count; returns how many.
pub fn populate(dom: DomId, count: u64) -> Result<u64, Errno> {
    let mut frames: Vec<u64> = (0..count).collect();
    populate_into(dom, &mut frames)
}

/// Gives `dom` a fresh frame at each pseudo-physical frame `frames` names, replacing each
/// entry with the machine frame given; returns how many were given (in order: a shortfall is
/// the tail).
pub fn populate_into(dom: DomId, frames: &mut [u64]) -> Result<u64, Errno> {
    use hypercall_abi::memory::{XENMEM_POPULATE_PHYSMAP, XenMemoryReservation};
    let mut r = XenMemoryReservation {
        extent_start: hypercall_abi::GuestHandle::from_raw(frames.as_mut_ptr() as u64),
        nr_extents: frames.len() as u64,
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

/// Reads the hypervisor's log ring into `buf` from position `from` (None: from the oldest
/// byte kept), clearing it afterwards if `clear`; returns (bytes read, the next position).
pub fn readconsole(from: Option<u32>, buf: &mut [u8], clear: bool) -> Result<(usize, u32), Errno> {
    use hypercall_abi::sysctl::{Readconsole, XEN_SYSCTL_READCONSOLE};
    let mut op = Sysctl::new(XEN_SYSCTL_READCONSOLE);
    op.set_op(&Readconsole {
        clear: u8::from(clear),
        incremental: u8::from(from.is_some()),
        index: from.unwrap_or(0),
        buffer: buf.as_mut_ptr() as u64,
        count: buf.len().min(u32::MAX as usize) as u32,
        ..Default::default()
    });
    sysctl(&mut op)?;
    let r: Readconsole = op.op();
    Ok(((r.count as usize).min(buf.len()), r.index))
}
