//! Running vCPUs on this CPU: which one is current, switching between them, the idle loop,
//! and the work done on every return to a guest (`exit_to_guest`): timers, rescheduling,
//! destroying dead domains and event-upcall delivery. Who runs next is the credit policy's
//! choice (`crate::sched::credit`), which this module feeds with wake-ups, sleeps and run times.
//!
//! The hypervisor keeps no per-vCPU stack: the running vCPU's registers are the frame at the
//! top of this CPU's stack, and a switch copies that frame out to the old vCPU's context and
//! the new vCPU's registers in. So a switch happens only on the way out to a guest, and a
//! hypercall that must wait (block, poll) returns first and is descheduled after.
//!
//! State is per CPU (`CpuSched`); with one CPU there is one, and the policy's entities are
//! this CPU's vCPUs. A second CPU brings a second `CpuSched` and an IPI to kick it.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::sched::credit::{Credit, Params};
use spin::Mutex;

use crate::arch::{cpu, entry::GuestRegs, fpu, paging, time, uaccess};
use crate::domain::{self, Vcpu, VcpuContext};
use crate::event;
use crate::sched::clock;
use crate::sched::timer;

use crate::sched::credit::DEFAULT_PERIOD_NS;
/// The default time slice; `sched_slice_ms=` on the command line changes it.
pub use crate::sched::credit::DEFAULT_SLICE_NS;

/// This CPU's scheduling state.
struct CpuSched {
    current: Option<Arc<Vcpu>>,
    /// The current vCPU's domain (saves a domain-table lookup on every hypercall).
    current_dom: Option<Arc<domain::Domain>>,
    /// vCPUs by policy id.
    vcpus: Vec<Option<Arc<Vcpu>>>,
    policy: Credit,
    /// Time the current vCPU started running (ns).
    since_ns: u64,
}

static CPU0: Mutex<CpuSched> = Mutex::new(CpuSched {
    current: None,
    current_dom: None,
    vcpus: Vec::new(),
    policy: Credit::new(DEFAULT_SLICE_NS, DEFAULT_PERIOD_NS),
    since_ns: 0,
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

/// Whether `v` can run now.
fn can_run(v: &Vcpu) -> bool {
    v.is_up.load(Ordering::Acquire)
        && !v.is_blocked.load(Ordering::Acquire)
        && domain::get(v.domain).is_some_and(|d| d.is_running())
}

/// The vCPU may run again (an event or timer woke it, or it was unpaused). Waking any vCPU
/// but the current one asks for a decision on the way back to the guest; the policy's BOOST
/// for a sleeper with credit left is what makes it preempt a CPU hog there.
pub fn wake(v: &Vcpu) {
    v.is_blocked.store(false, Ordering::SeqCst);
    if !can_run(v) {
        return;
    }
    let mut s = CPU0.lock();
    s.policy.wake(v.sched_id);
    if s.current.as_ref().is_none_or(|c| c.sched_id != v.sched_id) {
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

/// The work done on every way back into a guest: run expired timers, switch vCPUs if needed,
/// then deliver a pending event upcall to whichever vCPU will run.
pub fn exit_to_guest(regs: &mut GuestRegs) {
    timer::run_expired();
    loop {
        // Whatever stops the current vCPU from running (block, shutdown, pause, destruction)
        // asks for a reschedule, so the fast path checks nothing else.
        if NEED_RESCHED.swap(false, Ordering::AcqRel) {
            schedule(regs);
            // Scheduling takes time: the new slice (or a timer) may already have run out and
            // asked for another decision, which must not wait for an interrupt that will not
            // come (nothing is armed for a deadline already past).
            continue;
        }
        let cur = current();
        // Never leave to an address the CPU would fault on in ring 0 (a `syscall` at the top
        // of the lower half returns to a non-canonical rip): that is the guest's crash.
        if !uaccess::is_guest_range(regs.rip, 1) {
            if let Some(d) = domain::get(cur.domain) {
                domain::crash(&d, format_args!("return to a non-guest address {:#x}", regs.rip));
            }
            continue;
        }
        if event::upcall_due(&cur) {
            let mut ctx = cur.ctx.lock();
            event::deliver_upcall(&cur, &mut ctx, regs);
        }
        return;
    }
}

/// Charges the current vCPU and picks what runs next; idles while nothing can run.
fn schedule(regs: &mut GuestRegs) {
    let prev = current();
    let now = time::now_ns();
    // Before taking the scheduler lock: `can_run` reads the domain table, which comes first
    // in the lock order.
    let prev_can_run = can_run(&prev);
    {
        let mut s = CPU0.lock();
        let ran = now.saturating_sub(s.since_ns);
        s.policy.account(prev.sched_id, ran);

        prev.cpu_time_ns.fetch_add(ran, Ordering::Relaxed);
        s.since_ns = now;
        if !prev_can_run {
            s.policy.sleep(prev.sched_id);
        }
    }
    let mut saved = false;
    loop {
        let now = time::now_ns();
        let next = {
            let mut s = CPU0.lock();
            let pick = s.policy.pick(now);
            pick.and_then(|id| s.vcpus.get(id).cloned().flatten()).map(|v| {
                let slice = s.policy.run_for(v.sched_id, now);
                (v, slice)
            })
        };
        match next {
            Some((next, slice)) if can_run(&next) => {
                timer::set_slice_end(now + slice);
                if Arc::ptr_eq(&next, &prev) && !saved {
                    clock::publish(&next);
                    timer::run_expired();
                    return;
                }
                if !saved {
                    save_context(&prev, regs);
                }
                load_context(&next, regs);
                domain::destroy_pending(Some(&next));
                timer::run_expired();
                return;
            }
            Some((stale, _)) => {
                // The policy thought it runnable but it is not (raced with a block): park it.
                CPU0.lock().policy.sleep(stale.sched_id);
            }
            None => {
                if !saved {
                    save_context(&prev, regs);
                    saved = true;
                }
                // Nothing to run: leave every guest's page tables, finish off dead domains,
                // and wait for an interrupt (a timer or a device) to change that. A capped vCPU
                // waiting for its next credit makes the refill such a timer.
                let refill = {
                    let s = CPU0.lock();
                    if s.policy.has_parked() { s.policy.next_refill() } else { 0 }
                };
                timer::set_slice_end(refill);

                paging::load_cr3(crate::boot::setup::idle_l4());
                domain::destroy_pending(None);
                if domain::all().iter().all(|d| d.state() != domain::DomState::Running) {
                    log::error!("no domain left to run");
                    crate::arch::power::exit(crate::arch::power::ExitCode::HypervisorFailure);
                }
                timer::run_expired();
                cpu::idle_halt();
                timer::run_expired();

                CPU0.lock().since_ns = time::now_ns();
            }
        }
    }
}

/// Copies the running vCPU's state out of the CPU into its context.
fn save_context(v: &Vcpu, regs: &GuestRegs) {
    let mut ctx = v.ctx.lock();
    ctx.regs = *regs;
    fpu::save(&mut ctx.fpu);
    ctx.fs_base = cpu::rdmsr(cpu::MSR_FS_BASE);
    // While the hypervisor runs, the guest's active GS base is parked in KERNEL_GS_BASE.
    let gs = cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE);
    if ctx.kernel_mode {
        ctx.gs_base_kernel = gs;
    } else {
        ctx.gs_base_user = gs;
    }
}

/// Loads `v`'s state into the CPU and makes it current.
fn load_context(v: &Arc<Vcpu>, regs: &mut GuestRegs) {
    {
        let ctx = v.ctx.lock();
        *regs = ctx.regs;
        load_cpu_state(&ctx);
    }
    clock::publish(v);
    let d = domain::get(v.domain);
    let mut s = CPU0.lock();
    s.current = Some(v.clone());
    s.current_dom = d;
    s.since_ns = time::now_ns();
}

/// Loads everything of a context except the registers: FPU, page tables, segment bases.
pub fn load_cpu_state(ctx: &VcpuContext) {
    fpu::restore(&ctx.fpu);
    if ctx.guest_ts {
        fpu::set_ts();
    }
    let table = if ctx.kernel_mode { ctx.guest_table } else { ctx.guest_table_user };
    paging::load_cr3(table.0 << 12);
    cpu::write_base_msr(cpu::MSR_FS_BASE, ctx.fs_base);
    let gs = if ctx.kernel_mode { ctx.gs_base_kernel } else { ctx.gs_base_user };
    cpu::write_base_msr(cpu::MSR_KERNEL_GS_BASE, gs);
}

/// Enters the first vCPU the policy picks. Called once at the end of boot.
pub fn start() -> ! {
    let now = time::now_ns();
    // The first vCPU the policy offers that may really run (boot domUs wait paused). The
    // scheduler lock is dropped around `can_run`, which reads the domain table (lock order).
    let (first, slice) = loop {
        let (id, v) = {
            let mut s = CPU0.lock();
            let id = s.policy.pick(now).expect("dom0 is runnable");
            (id, s.vcpus[id].clone().expect("registered vCPU"))
        };
        if can_run(&v) {
            break (v, CPU0.lock().policy.run_for(id, now));
        }
        CPU0.lock().policy.sleep(id);
    };
    let regs = {
        let ctx = first.ctx.lock();
        load_cpu_state(&ctx);
        alloc::boxed::Box::new(ctx.regs)
    };
    clock::publish(&first);
    {
        let d = domain::get(first.domain);
        let mut s = CPU0.lock();
        s.current = Some(first);
        s.current_dom = d;
        s.since_ns = time::now_ns();
    }
    timer::set_slice_end(now + slice);
    timer::run_expired();
    let top = crate::arch::boot::boot_stack_top();
    crate::arch::entry::start_guest(top, crate::arch::layout::BOOT_STACK_SIZE as u64, &regs)
}
