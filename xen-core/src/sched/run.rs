//! This CPU's run state: which vCPU is current, which are runnable, and the credit policy's
//! view of them (`credit`), fed with wake-ups, blocks, pauses and run times. Everything that
//! makes a vCPU runnable or not (an event, a timer, an unpause, a block) calls in here; this
//! file calls out to no subsystem. The decision itself and the context switch are `switch`,
//! made on the way back to a guest.
//!
//! State is per CPU (`CpuSched`); with one CPU there is one, and the policy's entities are
//! this CPU's vCPUs. A second CPU brings a second `CpuSched` and an IPI to kick it.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::credit::{Credit, DEFAULT_PERIOD_NS, DEFAULT_SLICE_NS, Params};
use crate::domain::{self, Vcpu};

/// This CPU's scheduling state.
pub(super) struct CpuSched {
    pub(super) current: Option<Arc<Vcpu>>,
    /// The current vCPU's domain (saves a domain-table lookup on every hypercall).
    pub(super) current_dom: Option<Arc<domain::Domain>>,
    /// vCPUs by policy id.
    pub(super) vcpus: Vec<Option<Arc<Vcpu>>>,
    pub(super) policy: Credit,
    /// Time the current vCPU started running (ns).
    pub(super) since_ns: u64,
    /// Idling: `current` is only the vCPU that ran last, and is not running.
    pub(super) is_idle: bool,
}

pub(super) static CPU0: Mutex<CpuSched> = Mutex::new(CpuSched {
    current: None,
    current_dom: None,
    vcpus: Vec::new(),
    policy: Credit::new(DEFAULT_SLICE_NS, DEFAULT_PERIOD_NS),
    since_ns: 0,
    is_idle: false,
});
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// Sets the time slice (from the command line).
pub fn set_slice(slice_ns: u64) {
    let mut s = CPU0.lock();
    s.policy = Credit::new(slice_ns, DEFAULT_PERIOD_NS.max(slice_ns * 3));
}

/// The vCPU running on this CPU.
pub fn current() -> Arc<Vcpu> {
    CPU0.lock().current.clone().expect("a vCPU is current whenever a guest entered")
}

/// The vCPU running on this CPU, if one is (not while the CPU idles).
pub fn running() -> Option<Arc<Vcpu>> {
    let s = CPU0.lock();
    if s.is_idle { None } else { s.current.clone() }
}

/// The vCPU running on this CPU and its domain.
pub fn current_pair() -> (Arc<Vcpu>, Arc<domain::Domain>) {
    let s = CPU0.lock();
    (
        s.current.clone().expect("a vCPU is current whenever a guest entered"),
        s.current_dom.clone().expect("the current vCPU's domain lives while it runs"),
    )
}

/// Registers a future vCPU with the policy; returns its scheduler id.
pub fn register(params: Params) -> usize {
    let mut s = CPU0.lock();
    let id = s.policy.add(params);
    if s.vcpus.len() <= id {
        s.vcpus.resize(id + 1, None);
    }
    id
}

/// Makes `v` schedulable on this CPU (runnable if it is up).
pub fn add_vcpu(v: Arc<Vcpu>) {
    let mut s = CPU0.lock();
    let id = v.sched_id;
    if v.is_up.load(Ordering::Acquire) {
        s.policy.wake(id);
    }
    s.vcpus[id] = Some(v);
}

/// Forgets a vCPU of a destroyed domain.
pub fn remove_vcpu(v: &Vcpu) {
    let mut s = CPU0.lock();
    s.policy.remove(v.sched_id);
    if let Some(slot) = s.vcpus.get_mut(v.sched_id) {
        *slot = None;
    }
}

/// Credit parameters of a vCPU.
pub fn params(v: &Vcpu) -> Params {
    CPU0.lock().policy.params(v.sched_id).unwrap_or_default()
}

pub fn set_params(v: &Vcpu, p: Params) {
    CPU0.lock().policy.set_params(v.sched_id, p);
}

/// The running vCPU yields: another runnable one goes first at the next decision, which
/// happens on the way back to the guest.
pub fn yield_current() {
    let v = current();
    CPU0.lock().policy.yield_(v.sched_id);
    request_resched();
}

/// Asks for a scheduling decision on the next exit to a guest.
pub fn request_resched() {
    NEED_RESCHED.store(true, Ordering::Release);
}

/// Takes the pending request for a scheduling decision, if any.
pub fn take_resched() -> bool {
    NEED_RESCHED.swap(false, Ordering::AcqRel)
}

/// Whether `v` can run now.
pub(super) fn can_run(v: &Vcpu) -> bool {
    v.is_up.load(Ordering::Acquire)
        && !v.is_blocked.load(Ordering::Acquire)
        && domain::get(v.domain).is_some_and(|d| d.is_running())
}

/// The vCPU may run again (an event or timer woke it, or it was unpaused). Waking any vCPU
/// but the one running asks for a decision on the way back to the guest; the policy's BOOST
/// for a sleeper with credit left is what makes it preempt a CPU hog there. While the CPU
/// idles every wake-up asks, the last vCPU to run included: the idle loop must not halt
/// after a timer it fired on its way to the halt woke someone.
pub fn wake(v: &Vcpu) {
    v.is_blocked.store(false, Ordering::SeqCst);
    if !can_run(v) {
        return;
    }
    let mut s = CPU0.lock();
    s.policy.wake(v.sched_id);
    let running = !s.is_idle && s.current.as_ref().is_some_and(|c| c.sched_id == v.sched_id);
    if !running {
        v.runstate.lock().enter(super::runstate::RUNNABLE, crate::arch::time::now_ns());
        request_resched();
    }
}

/// The vCPU blocked (SCHEDOP_block/poll).
pub fn block(v: &Vcpu) {
    v.is_blocked.store(true, Ordering::SeqCst);
    request_resched();
}

/// A domain stopped running (shut down, paused, dying): its vCPUs leave the run queue.
pub fn domain_stopped(d: &domain::Domain) {
    let mut s = CPU0.lock();
    for v in &d.vcpus {
        s.policy.sleep(v.sched_id);
    }
    drop(s);
    request_resched();
}

/// A domain may run again (unpaused).
pub fn domain_resumed(d: &domain::Domain) {
    for v in &d.vcpus {
        if v.is_up.load(Ordering::Acquire) && !v.is_blocked.load(Ordering::Acquire) {
            CPU0.lock().policy.wake(v.sched_id);
        }
    }
    request_resched();
}
