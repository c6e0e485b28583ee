//! Domains and vCPUs: their state, the global domain table, shutdown, crash and destruction.
//!
//! A [`Domain`] is shared (`Arc`) between the domain table, the scheduler and whoever is
//! running a hypercall on its behalf; its mutable parts sit behind their own locks. A
//! [`Vcpu`]'s guest-visible context ([`VcpuContext`]) is locked by the CPU running it; what
//! other vCPUs must reach (where its vcpu_info is, its timers, whether it blocks) is atomic.
//! Lock order: domain table, a vCPU context, event-channel tables (lower domid first), the
//! scheduler, then `MM`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::console::ratelimit::RateLimit;
use crate::event::ports::EvtchnTable;
use hypercall_abi::event_channel::VIRQ_DOM_EXC;
use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use hypercall_abi::{DomId, EvtchnPort, Mfn};
use log::{error, info};
use spin::{Mutex, RwLock};

use crate::arch::entry::GuestRegs;
use crate::arch::fpu::FxArea;
use crate::arch::power::{self, ExitCode};
use crate::mm::machine::{self, DirectPageMem, with_mm};

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    Running,
    /// Shut down by itself (or crashed), with the SHUTDOWN_* reason; its memory is still held.
    Shutdown(u32),
    /// Being torn down.
    Dying,
}

/// One entry of a vCPU's virtual trap table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapEntry {
    /// DPL in bits 0-1 (who may raise it with `int n`); bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}

/// A guest callback: address and whether to mask events on entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    pub address: u64,
    pub mask_events: bool,
}

/// A vCPU's guest-visible state. Registers live here only while the vCPU is not running; when
/// it runs they are in the frame on its CPU's stack.
pub struct VcpuContext {
    pub regs: GuestRegs,
    pub fpu: Box<FxArea>,
    /// Guest kernel mode (as opposed to guest user mode); both run in ring 3.
    pub kernel_mode: bool,
    /// Kernel and user base page tables (L4 MFNs; user is 0 when none). Each holds a
    /// general+type reference on its frame.
    pub guest_table: Mfn,
    pub guest_table_user: Mfn,
    /// Stack for entering kernel mode from user mode (`stack_switch`).
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    pub trap_table: Box<[TrapEntry; 256]>,
    pub event_callback: Callback,
    pub failsafe_callback: Callback,
    pub syscall_callback: Callback,
    /// Virtual CR0.TS set by `fpu_taskswitch`.
    pub guest_ts: bool,
    /// Virtual I/O privilege level (`physdev_op(set_iopl)`): the guest kernel's port I/O is
    /// emulated when it is at least 1.
    pub iopl: u8,
}

/// What a vCPU in SCHEDOP_poll waits for.
#[derive(Clone, Debug, Default)]
pub struct PollSet {
    pub ports: Vec<EvtchnPort>,
}

/// A virtual CPU.
pub struct Vcpu {
    pub id: u32,
    pub domain: DomId,
    /// The scheduler policy's handle.
    pub sched_id: usize,
    pub ctx: Mutex<VcpuContext>,
    /// Brought up (VCPUOP_up, or vCPU 0 at build).
    pub is_up: AtomicBool,
    /// Blocked in SCHEDOP_block/poll until an event arrives.
    pub is_blocked: AtomicBool,
    /// Nanoseconds of CPU time consumed.
    pub cpu_time_ns: AtomicU64,
    /// Where this vCPU's `vcpu_info` lives (machine frame, byte offset).
    vcpu_info_mfn: AtomicU64,
    vcpu_info_off: AtomicU64,
    /// Single-shot timer deadline in system time (ns), 0 = none.
    pub timer_deadline: AtomicU64,
    /// Periodic timer period and next deadline (ns), period 0 = none.
    pub periodic_ns: AtomicU64,
    pub periodic_next: AtomicU64,
    /// SCHEDOP_poll timeout (ns), 0 = none.
    pub poll_deadline: AtomicU64,
    pub poll: Mutex<Option<PollSet>>,
}

impl Vcpu {
    pub fn new(
        id: u32,
        domain: DomId,
        sched_id: usize,
        ctx: VcpuContext,
        vcpu_info: (Mfn, usize),
    ) -> Self {
        Vcpu {
            id,
            domain,
            sched_id,
            ctx: Mutex::new(ctx),
            is_up: AtomicBool::new(false),
            is_blocked: AtomicBool::new(false),
            cpu_time_ns: AtomicU64::new(0),
            vcpu_info_mfn: AtomicU64::new(vcpu_info.0.0),
            vcpu_info_off: AtomicU64::new(vcpu_info.1 as u64),
            timer_deadline: AtomicU64::new(0),
            periodic_ns: AtomicU64::new(0),
            periodic_next: AtomicU64::new(0),
            poll_deadline: AtomicU64::new(0),
            poll: Mutex::new(None),
        }
    }

    /// A byte of this vCPU's `vcpu_info` (shared with the guest, so atomic).
    pub fn info_byte(&self, offset: usize) -> &'static AtomicU8 {
        let (mfn, off) = self.vcpu_info();
        machine::frame_byte(mfn, off + offset)
    }

    /// A 64-bit word of this vCPU's `vcpu_info` (offset 8-aligned).
    pub fn info_word(&self, offset: usize) -> &'static AtomicU64 {
        let (mfn, off) = self.vcpu_info();
        machine::frame_word(mfn, (off + offset) / 8)
    }

    pub fn vcpu_info(&self) -> (Mfn, usize) {
        (
            Mfn(self.vcpu_info_mfn.load(Ordering::Acquire)),
            self.vcpu_info_off.load(Ordering::Acquire) as usize,
        )
    }

    /// Moves `vcpu_info` (VCPUOP_register_vcpu_info); the offset must keep it in one page.
    pub fn set_vcpu_info(&self, mfn: Mfn, offset: usize) {
        self.vcpu_info_off.store(offset as u64, Ordering::Release);
        self.vcpu_info_mfn.store(mfn.0, Ordering::Release);
    }
}

/// A domain.
pub struct Domain {
    pub id: DomId,
    pub name: String,
    pub is_privileged: bool,
    pub shared_info: Mfn,
    pub nr_pages: u64,
    pub state: Mutex<DomState>,
    /// Paused by the toolstack (domctl), independently of its own state.
    pub is_paused: AtomicBool,
    pub vcpus: Vec<Arc<Vcpu>>,
    /// VM-assist bits enabled by the guest.
    pub vm_assist: AtomicU64,
    /// Guest-triggered log lines (bad hypercalls, crashes) are limited per domain.
    pub log_limit: Mutex<RateLimit>,
    /// Console output is accumulated to whole lines before it reaches the serial log.
    pub console_line: Mutex<Vec<u8>>,
    pub evtchn: Mutex<EvtchnTable>,
    pub grants: Mutex<crate::grant::map::GrantTable>,
    /// Destroyed by the hypervisor as soon as it shuts down (domains it built itself at boot);
    /// otherwise the toolstack destroys it.
    pub auto_destroy: bool,
}

impl Domain {
    pub fn state(&self) -> DomState {
        *self.state.lock()
    }

    /// Whether its vCPUs may run at all.
    pub fn is_running(&self) -> bool {
        self.state() == DomState::Running && !self.is_paused.load(Ordering::Acquire)
    }

    pub fn cpu_time_ns(&self) -> u64 {
        self.vcpus.iter().map(|v| v.cpu_time_ns.load(Ordering::Relaxed)).sum()
    }
}

/// Offsets inside `vcpu_info` (64 bytes).
pub const VI_UPCALL_PENDING: usize = 0;
pub const VI_UPCALL_MASK: usize = 1;
pub const VI_PENDING_SEL: usize = 8;
pub const VI_CR2: usize = 16;
pub const VI_TIME: usize = 32;

static DOMAINS: RwLock<BTreeMap<DomId, Arc<Domain>>> = RwLock::new(BTreeMap::new());
/// Domains waiting to be destroyed once no CPU runs them.
static TO_DESTROY: Mutex<Vec<Arc<Domain>>> = Mutex::new(Vec::new());

/// The live domain `id`.
pub fn get(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.read().get(&id).cloned()
}

/// All live domains, in id order.
pub fn all() -> Vec<Arc<Domain>> {
    DOMAINS.read().values().cloned().collect()
}

/// The first live domain with id >= `id`.
pub fn first_from(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.read().range(id..).next().map(|(_, d)| d.clone())
}

pub fn insert(d: Arc<Domain>) {
    DOMAINS.write().insert(d.id, d);
}

/// The lowest domain id not in use (1..DOMID_FIRST_RESERVED).
pub fn free_id() -> Option<DomId> {
    let t = DOMAINS.read();
    (1..DomId::FIRST_RESERVED.0).map(DomId).find(|id| !t.contains_key(id))
}

/// Guest-caused log line, rate limited per domain (a guest must not flood the console).
#[macro_export]
macro_rules! guest_log {
    ($dom:expr, $($arg:tt)*) => {{
        let d: &$crate::domain::Domain = &$dom;
        let now = $crate::arch::time::now_ns();
        if d.log_limit.lock().allow(now) {
            log::warn!("d{}: {}", d.id.0, format_args!($($arg)*));
        }
    }};
}

impl VcpuContext {
    pub fn new() -> Self {
        VcpuContext {
            regs: GuestRegs::default(),
            fpu: Box::new(FxArea::initial()),
            kernel_mode: true,
            guest_table: Mfn(0),
            guest_table_user: Mfn(0),
            kernel_ss: 0,
            kernel_sp: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            trap_table: Box::new([TrapEntry::default(); 256]),
            event_callback: Callback::default(),
            failsafe_callback: Callback::default(),
            syscall_callback: Callback::default(),
            guest_ts: false,
            iopl: 0,
        }
    }
}

impl Default for VcpuContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Records that `d` shut itself down (or crashed) and stops its vCPUs. When dom0 goes, the
/// machine goes with it, with an exit status that says how; dom0 hears of any other domain's
/// change through VIRQ_DOM_EXC.
pub fn shutdown(d: &Arc<Domain>, reason: u32) {
    {
        let mut st = d.state.lock();
        if matches!(*st, DomState::Shutdown(_) | DomState::Dying) {
            return;
        }
        *st = DomState::Shutdown(reason);
    }
    let how = match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_CRASH => "crash",
        _ => "other",
    };
    info!("domain {} ({}) shut down: {how}", d.id.0, d.name);
    if d.id == DomId(0) {
        let code = match reason {
            SHUTDOWN_POWEROFF => ExitCode::Poweroff,
            SHUTDOWN_REBOOT => ExitCode::Reboot,
            _ => ExitCode::Crash,
        };
        info!("dom0 is gone: ending the machine ({how})");
        power::exit(code);
    }
    crate::sched::domain_stopped(d);
    notify_dom0();
    if d.auto_destroy {
        request_destroy(d);
    }
}

/// Crashes `d` because of something it did: logged, then shut down with reason crash. The
/// hypervisor and other domains carry on.
pub fn crash(d: &Arc<Domain>, why: core::fmt::Arguments<'_>) {
    error!("domain {} ({}) crashed: {why}", d.id.0, d.name);
    shutdown(d, SHUTDOWN_CRASH);
}

/// Tells dom0 a domain changed state (VIRQ_DOM_EXC), as Xen does.
pub fn notify_dom0() {
    if let Some(d0) = get(DomId(0)) {
        crate::event::send_virq(&d0, 0, VIRQ_DOM_EXC);
    }
}

/// Queues `d` for destruction: it happens once no CPU runs it (see [`destroy_pending`]).
pub fn request_destroy(d: &Arc<Domain>) {
    {
        let mut st = d.state.lock();
        if *st == DomState::Dying {
            return;
        }
        *st = DomState::Dying;
    }
    crate::sched::domain_stopped(d);
    TO_DESTROY.lock().push(d.clone());
}

/// Destroys queued domains whose vCPUs are not current on this CPU. Called by the scheduler
/// after it switched away from them.
pub fn destroy_pending(current: Option<&Arc<Vcpu>>) {
    loop {
        let next = {
            let mut q = TO_DESTROY.lock();
            let idx = q.iter().position(|d| current.is_none_or(|c| c.domain != d.id));
            idx.map(|i| q.remove(i))
        };
        match next {
            Some(d) => destroy(&d),
            None => return,
        }
    }
}

/// Tears a domain down: its event channels are closed (peers see their ports unbound), its
/// vCPUs leave the scheduler, and every frame it owns goes back, except those another domain
/// still maps, which stay until that domain lets go.
fn destroy(d: &Arc<Domain>) {
    crate::event::close_all(d);
    crate::grant::map::domain_destroyed(d);
    for v in &d.vcpus {
        crate::sched::remove_vcpu(v);
    }
    let mut roots = Vec::new();
    for v in &d.vcpus {
        let ctx = v.ctx.lock();
        roots.extend([ctx.guest_table, ctx.guest_table_user].into_iter().filter(|m| m.0 != 0));
    }
    let before = with_mm(|mm| mm.free_frames());
    with_mm(|mm| mm.domain_relinquish(&mut DirectPageMem, d.id, &roots));
    let after = with_mm(|mm| mm.free_frames());
    DOMAINS.write().remove(&d.id);
    info!("domain {} ({}) destroyed: {} pages returned", d.id.0, d.name, after - before);
    reap();
    notify_dom0();
}

/// Forgets destroyed domains whose last frames have come back (frames another domain still
/// mapped when they died return when it unmaps them), logging it: the proof that nothing
/// leaked. Called after destruction and after unmaps.
pub fn reap() {
    // The domain table is read outside the memory lock (it comes first in the lock order).
    let drained: Vec<DomId> =
        with_mm(|mm| mm.drained_dying()).into_iter().filter(|id| get(*id).is_none()).collect();
    let done: Vec<DomId> =
        with_mm(|mm| drained.into_iter().filter(|id| mm.domain_forget(*id)).collect());
    for id in done {
        info!("domain {}: all frames returned", id.0);
    }
}
