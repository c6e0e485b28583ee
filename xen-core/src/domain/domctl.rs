//! `domctl` for dom0's toolstack, which builds every domU through it: create an empty domain
//! (named by its handle), its vCPUs, its memory ceiling, its vCPU's state (set and read),
//! list domains and their state, pause, unpause, destroy, scheduling weights. Its memory is
//! populated with `memory_op` and written through foreign mappings on the domain's behalf.
//! The table lets only the privileged domain in.

use core::sync::atomic::Ordering;

use hypercall_abi::domctl::*;
use hypercall_abi::vcpu::VcpuGuestContext;
use hypercall_abi::{DomId, Errno};
use zerocopy::{FromZeros, IntoBytes};

use crate::arch::uaccess;
use crate::domain::{self, DomState, build, guest_context, lifecycle};
use crate::hypercall::{Hc, HcResult, copy_in, copy_out};
use crate::mm::machine::with_mm;
use crate::sched;
use crate::sched::credit::Params;

/// Most vCPUs a domain may have: the hypervisor runs one per domain (no SMP guests yet).
pub const MAX_VCPUS: u32 = 1;

pub fn domctl(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let mut op: Domctl = copy_in(a[0])?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    match op.cmd {
        XEN_DOMCTL_GETDOMAININFO => {
            let d = domain::first_from(op.domain).ok_or(Errno::ESRCH)?;
            let mem = with_mm(|mm| mm.domain(d.id).copied());
            let mut flags = match d.state() {
                DomState::Running => 0,
                DomState::Shutdown(r) => XEN_DOMINF_SHUTDOWN | (r << XEN_DOMINF_SHUTDOWN_SHIFT),
                DomState::Dying => XEN_DOMINF_DYING,
            };
            if d.is_paused.load(Ordering::Acquire) {
                flags |= XEN_DOMINF_PAUSED;
            }
            // As Xen: blocked if every vCPU is; running if one is on a CPU now, which (one
            // CPU) is only the caller's. A runnable vCPU waiting for the CPU is neither.
            if d.vcpus.iter().all(|v| v.is_blocked.load(Ordering::Acquire)) {
                flags |= XEN_DOMINF_BLOCKED;
            } else if d.id == hc.dom.id {
                flags |= XEN_DOMINF_RUNNING;
            }
            let info = GetDomainInfo {
                domain: d.id,
                flags,
                tot_pages: mem.map_or(0, |m| m.tot_pages),
                max_pages: mem.map_or(0, |m| m.max_pages),
                shared_info_frame: d.shared_info.0,
                cpu_time: d.cpu_time_ns(),
                nr_online_vcpus: d.vcpus.iter().filter(|v| v.is_up.load(Ordering::Acquire)).count()
                    as u32,
                max_vcpu_id: d.vcpus.len().saturating_sub(1) as u32,
                handle: name_handle(&d.name),
                ..Default::default()
            };
            op.domain = d.id;
            op.set_op(&info);
            copy_out(a[0], &op)?;
        }
        XEN_DOMCTL_CREATEDOMAIN => {
            let c: CreateDomain = op.op();
            check_create(&c)?;
            // As Xen: 0 or a reserved id asks the hypervisor to pick the next free one.
            let id = if op.domain.0 == 0 || op.domain.0 >= DomId::FIRST_RESERVED.0 {
                domain::next_free_id().ok_or(Errno::ENOMEM)?
            } else if domain::is_free_id(op.domain) {
                op.domain
            } else {
                return Err(Errno::EEXIST);
            };
            let name = handle_name(&c.handle, id);
            // Memory is given later (max_mem, then memory_op on the domain's behalf).
            build::create_empty(id, &name)?;
            op.domain = id;
            copy_out(a[0], &op)?;
        }
        XEN_DOMCTL_MAX_VCPUS => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            let m: MaxVcpus = op.op();
            // The vCPUs were made with the domain (createdomain's max_vcpus, as on Xen).
            if d.id == hc.dom.id || m.max as usize != d.vcpus.len() {
                return Err(Errno::EINVAL);
            }
        }
        XEN_DOMCTL_SETVCPUCONTEXT => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            let o: VcpuContextOp = op.op();
            let v = d.vcpus.get(o.vcpu as usize).ok_or(Errno::EINVAL)?;
            if d.id == hc.dom.id || o.ctxt == 0 || d.state() != DomState::Running {
                return Err(Errno::EINVAL);
            }
            set_vcpu_context(&d, v, o.ctxt)?;
        }
        XEN_DOMCTL_GETVCPUCONTEXT => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            let o: VcpuContextOp = op.op();
            let v = d.vcpus.get(o.vcpu as usize).ok_or(Errno::EINVAL)?;
            if d.id == hc.dom.id {
                return Err(Errno::EINVAL);
            }
            if !v.is_up.load(Ordering::Acquire) {
                return Err(Errno::ENODATA);
            }
            let mut c = alloc::boxed::Box::new(VcpuGuestContext::new_zeroed());
            guest_context::get(&d, v, &mut c);
            uaccess::copy_to_guest(o.ctxt, c.as_bytes())?;
        }
        XEN_DOMCTL_DESTROYDOMAIN => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            if d.id == DomId(0) {
                return Err(Errno::EINVAL);
            }
            lifecycle::request_destroy(&d);
        }
        XEN_DOMCTL_PAUSEDOMAIN => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            if d.id == DomId(0) {
                return Err(Errno::EINVAL);
            }
            d.is_paused.store(true, Ordering::Release);
            sched::domain_stopped(&d);
        }
        XEN_DOMCTL_UNPAUSEDOMAIN => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            d.is_paused.store(false, Ordering::Release);
            sched::domain_resumed(&d);
        }
        XEN_DOMCTL_MAX_MEM => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            let m: MaxMem = op.op();
            with_mm(|mm| mm.set_max_pages(d.id, m.max_memkb / 4))?;
        }
        XEN_DOMCTL_SCHEDULER_OP => {
            let d = domain::get(op.domain).ok_or(Errno::ESRCH)?;
            let mut s: SchedulerOp = op.op();
            if s.sched_id != XEN_SCHEDULER_CREDIT {
                return Err(Errno::EINVAL);
            }
            match s.cmd {
                XEN_DOMCTL_SCHEDOP_PUTINFO => {
                    if s.weight == 0 || s.cap > 100 {
                        return Err(Errno::EINVAL);
                    }
                    for v in &d.vcpus {
                        sched::set_params(
                            v,
                            Params { weight: s.weight.into(), cap_pct: s.cap.into() },
                        );
                    }
                }
                XEN_DOMCTL_SCHEDOP_GETINFO => {
                    let p = d.vcpus.first().map(|v| sched::params(v)).unwrap_or_default();
                    s.weight = p.weight as u16;
                    s.cap = p.cap_pct as u16;
                    op.set_op(&s);
                    copy_out(a[0], &op)?;
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        _ => return Err(Errno::ENOSYS),
    }
    Ok(Some(0))
}

/// What createdomain can give: a PV domain of one vCPU with grant table v1. The event-channel
/// and grant-table limits are the hypervisor's own per-domU limits whatever is asked (they
/// bound what a domain can make the hypervisor allocate: docs/MEMORY.md).
fn check_create(c: &CreateDomain) -> Result<(), Errno> {
    let version = c.grant_opts & 0xF;
    if c.flags != 0
        || c.iommu_opts != 0
        || c.vmtrace_size != 0
        || c.cpupool_id != 0
        || c.arch_emulation_flags != 0
        || !(1..=MAX_VCPUS).contains(&c.max_vcpus)
        || version > 1
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The name a domain is created with: its handle's text (`domain-<id>` if it has none).
fn handle_name(h: &[u8; 16], id: DomId) -> alloc::string::String {
    let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
    match core::str::from_utf8(&h[..end]) {
        Ok(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) => n.into(),
        _ => alloc::format!("domain-{}", id.0),
    }
}

/// XEN_DOMCTL_setvcpucontext: the context is copied in once (on the heap: 5 KiB), checked,
/// and loaded; a domain that is not paused gets the vCPU scheduled at once.
fn set_vcpu_context(d: &domain::Domain, v: &domain::Vcpu, at: u64) -> Result<(), Errno> {
    let mut c = alloc::boxed::Box::new(VcpuGuestContext::new_zeroed());
    uaccess::copy_from_guest(c.as_mut_bytes(), at)?;
    guest_context::set(d, v, &c)?;
    crate::sched::clock::publish(v);
    if !d.is_paused.load(Ordering::Acquire) {
        crate::sched::domain_resumed(d);
    }
    Ok(())
}

/// The domain's name in the 16-byte `handle` (Xen's toolstack keeps a UUID there; ours carries
/// the name the toolstack gave it at createdomain, NUL padded and cut at 16 bytes).
fn name_handle(name: &str) -> [u8; 16] {
    let mut h = [0u8; 16];
    let n = name.len().min(16);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    h
}
