//! Timers and vCPU operations: `set_timer_op` and `vcpu_op` (timers, up/down state,
//! `register_vcpu_info`).

use core::sync::atomic::Ordering;

use hypercall_abi::vcpu::{
    VCPU_SSHOTTMR_FUTURE, VCPUOP_DOWN, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_IS_UP,
    VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_INFO,
    VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VCPUOP_UP,
    VcpuRegisterRunstateMemoryArea, VcpuRegisterTimeMemoryArea, VcpuRegisterVcpuInfo,
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
};
use hypercall_abi::{Errno, Mfn};

use super::{areas, timer};
use crate::arch::time;
use crate::hypercall::{Hc, HcResult, copy_in, copy_out};
use crate::mm::PageType;
use crate::mm::machine::{self, DirectPageMem, with_mm};
use crate::sched;

/// The shortest periodic timer a guest may ask for (Xen's limit).
const MIN_PERIOD_NS: u64 = 1_000_000;

/// `set_timer_op(deadline)`: a single-shot VIRQ_TIMER at absolute system time; 0 cancels.
pub fn set_timer_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    arm_singleshot(hc, a[0]);
    Ok(Some(0))
}

fn arm_singleshot(hc: &Hc<'_>, deadline: u64) {
    hc.vcpu.timer_deadline.store(deadline, Ordering::Release);
    if deadline != 0 {
        timer::deadline_added(deadline.max(1));
    }
}

pub fn vcpu_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (cmd, vcpu_id, arg) = (a[0] as u32, a[1], a[2]);
    let Some(v) = hc.dom.vcpus.get(usize::try_from(vcpu_id).unwrap_or(usize::MAX)).cloned() else {
        return Err(Errno::ENOENT);
    };
    let is_self = v.id == hc.vcpu.id;
    match cmd {
        VCPUOP_IS_UP => Ok(Some(u64::from(v.is_up.load(Ordering::Acquire)))),
        // Bringing up another vCPU needs VCPUOP_initialise, which is not implemented.
        VCPUOP_UP => {
            if v.is_up.load(Ordering::Acquire) {
                Ok(Some(0))
            } else {
                Err(Errno::EINVAL)
            }
        }
        VCPUOP_DOWN => {
            v.is_up.store(false, Ordering::Release);
            sched::request_resched();
            Ok(Some(0))
        }
        VCPUOP_SET_SINGLESHOT_TIMER if is_self => {
            let t: VcpuSetSingleshotTimer = copy_in(arg)?;
            if t.flags & VCPU_SSHOTTMR_FUTURE != 0 && t.timeout_abs_ns < time::now_ns() {
                return Err(Errno::ETIME);
            }
            arm_singleshot(hc, t.timeout_abs_ns.max(1));
            Ok(Some(0))
        }
        VCPUOP_STOP_SINGLESHOT_TIMER if is_self => {
            hc.vcpu.timer_deadline.store(0, Ordering::Release);
            Ok(Some(0))
        }
        VCPUOP_SET_PERIODIC_TIMER if is_self => {
            let t: VcpuSetPeriodicTimer = copy_in(arg)?;
            if t.period_ns < MIN_PERIOD_NS {
                return Err(Errno::EINVAL);
            }
            let first = time::now_ns() + t.period_ns;
            hc.vcpu.periodic_next.store(first, Ordering::Release);
            hc.vcpu.periodic_ns.store(t.period_ns, Ordering::Release);
            timer::deadline_added(first);
            Ok(Some(0))
        }
        VCPUOP_STOP_PERIODIC_TIMER if is_self => {
            hc.vcpu.periodic_ns.store(0, Ordering::Release);
            Ok(Some(0))
        }
        VCPUOP_REGISTER_VCPU_INFO => {
            let r: VcpuRegisterVcpuInfo = copy_in(arg)?;
            let off = r.offset as usize;
            if !off.is_multiple_of(8) || off + 64 > 4096 {
                return Err(Errno::EINVAL);
            }
            let mfn = Mfn(r.mfn);
            // The page stays writable-typed and referenced while it holds vcpu_info, so it can
            // be neither freed nor turned into a page table under the hypervisor's feet.
            with_mm(|mm| {
                mm.get_page_and_type(&mut DirectPageMem, mfn, PageType::Writable, hc.dom.id)
            })?;
            let (old_mfn, old_off) = v.vcpu_info();
            let mut buf = [0u8; 64];
            machine::read_frame(old_mfn, old_off, &mut buf);
            machine::write_frame(mfn, off, &buf);
            v.set_vcpu_info(mfn, off);
            if old_mfn != hc.dom.shared_info {
                with_mm(|mm| mm.put_page_and_type(&mut DirectPageMem, old_mfn));
            }
            Ok(Some(0))
        }
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            let r: VcpuRegisterRunstateMemoryArea = copy_in(arg)?;
            v.runstate_area.store(r.addr, Ordering::Release);
            // As on Xen: the running vCPU's area is filled at once; another's at its next run.
            if is_self {
                areas::update_runstate(hc.dom, &v, hc.ctx);
            }
            Ok(Some(0))
        }
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => {
            let r: VcpuRegisterTimeMemoryArea = copy_in(arg)?;
            v.time_area.store(r.addr, Ordering::Release);
            if is_self {
                areas::update_time(&v, hc.ctx);
            }
            Ok(Some(0))
        }
        VCPUOP_GET_RUNSTATE_INFO => {
            let info = v.runstate.lock().info();
            copy_out(arg, &info)?;
            Ok(Some(0))
        }
        VCPUOP_SET_SINGLESHOT_TIMER
        | VCPUOP_STOP_SINGLESHOT_TIMER
        | VCPUOP_SET_PERIODIC_TIMER
        | VCPUOP_STOP_PERIODIC_TIMER => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    }
}
