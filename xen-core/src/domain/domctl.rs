//! `domctl` for dom0's toolstack: list domains and their state, pause, unpause, destroy, set
//! memory ceilings and scheduling weights. The table lets only the privileged domain in.

use core::sync::atomic::Ordering;

use hypercall_abi::domctl::*;
use hypercall_abi::{DomId, Errno};

use crate::domain::{self, DomState, build, lifecycle};
use crate::hypercall::{Hc, HcResult, copy_in, copy_out};
use crate::mm::machine::with_mm;
use crate::sched;
use crate::sched::credit::Params;

pub fn domctl(_hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
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
            if d.vcpus.iter().all(|v| v.is_blocked.load(Ordering::Acquire)) {
                flags |= XEN_DOMINF_BLOCKED;
            } else {
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
            let id =
                if op.domain.0 == 0 { domain::free_id().ok_or(Errno::ENOSPC)? } else { op.domain };
            if id.0 >= DomId::FIRST_RESERVED.0 || domain::get(id).is_some() {
                return Err(Errno::EEXIST);
            }
            // Memory is given later (max_mem, then memory_op on the domain's behalf).
            build::create_empty(id, 0)?;
            op.domain = id;
            copy_out(a[0], &op)?;
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

/// The domain's name in the 16-byte `handle` (Xen's toolstack keeps a UUID there; ours carries
/// the name the hypervisor gave a boot-time domain, NUL padded and cut at 16 bytes).
fn name_handle(name: &str) -> [u8; 16] {
    let mut h = [0u8; 16];
    let n = name.len().min(16);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    h
}
