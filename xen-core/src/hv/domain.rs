//! Domains and vCPUs: their state, the global domain table, shutdown and crash.
//!
//! A [`Domain`] is shared (`Arc`) between the domain table, the scheduler and whoever is
//! running a hypercall on its behalf; its mutable parts sit behind their own locks. A
//! [`Vcpu`]'s guest-visible context ([`VcpuContext`]) is locked by the CPU running it.
//! Lock order: domain table, then a vCPU context, then a domain's subsystem locks, then `MM`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use hypercall_abi::{DomId, Mfn};
use log::{error, info};
use spin::{Mutex, RwLock};
use xen_core::ratelimit::RateLimit;

use super::arch::entry::GuestRegs;
use super::arch::fpu::FxArea;
use super::arch::power::{self, ExitCode};
use super::mem;

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    Running,
    Paused,
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
    /// Where this vCPU's `vcpu_info` lives (machine frame, byte offset).
    pub vcpu_info: (Mfn, usize),
}

/// A virtual CPU.
pub struct Vcpu {
    pub id: u32,
    pub domain: DomId,
    pub ctx: Mutex<VcpuContext>,
    /// Runnable as far as the vCPU itself is concerned (not blocked, not down).
    pub is_runnable: AtomicBool,
    /// Blocked in SCHEDOP_block/poll until an event arrives.
    pub is_blocked: AtomicBool,
    /// Nanoseconds of CPU time consumed.
    pub cpu_time_ns: AtomicU64,
}

/// A domain.
pub struct Domain {
    pub id: DomId,
    pub name: String,
    pub is_privileged: bool,
    pub shared_info: Mfn,
    pub nr_pages: u64,
    pub state: Mutex<DomState>,
    pub vcpus: Vec<Arc<Vcpu>>,
    /// VM-assist bits enabled by the guest.
    pub vm_assist: AtomicU64,
    /// Guest-triggered log lines (bad hypercalls, crashes) are limited per domain.
    pub log_limit: Mutex<RateLimit>,
    /// Console output is accumulated to whole lines before it reaches the serial log.
    pub console_line: Mutex<Vec<u8>>,
}

impl Domain {
    /// The `vcpu_info` upcall flags of vCPU `v`.
    pub fn vcpu_info_byte(v: &VcpuContext, offset: usize) -> &'static AtomicU8 {
        mem::frame_byte(v.vcpu_info.0, v.vcpu_info.1 + offset)
    }

    pub fn state(&self) -> DomState {
        *self.state.lock()
    }
}

/// Offsets inside `vcpu_info` (64 bytes).
pub const VI_UPCALL_PENDING: usize = 0;
pub const VI_UPCALL_MASK: usize = 1;
pub const VI_PENDING_SEL: usize = 8;
pub const VI_CR2: usize = 16;
pub const VI_TIME: usize = 32;

static DOMAINS: RwLock<BTreeMap<DomId, Arc<Domain>>> = RwLock::new(BTreeMap::new());

/// The live domain `id`.
pub fn get(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.read().get(&id).cloned()
}

/// All live domains.
pub fn all() -> Vec<Arc<Domain>> {
    DOMAINS.read().values().cloned().collect()
}

pub fn insert(d: Arc<Domain>) {
    DOMAINS.write().insert(d.id, d);
}

/// Guest-caused log line, rate limited per domain (a guest must not flood the console).
#[macro_export]
macro_rules! guest_log {
    ($dom:expr, $($arg:tt)*) => {{
        let d: &$crate::hv::domain::Domain = &$dom;
        let now = $crate::hv::arch::time::now_ns();
        if d.log_limit.lock().allow(now) {
            log::warn!("d{}: {}", d.id.0, format_args!($($arg)*));
        }
    }};
}

impl VcpuContext {
    pub fn new(vcpu_info: (Mfn, usize)) -> Self {
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
            vcpu_info,
        }
    }
}

/// Records that `d` shut itself down (or crashed) and stops its vCPUs. When dom0 goes, the
/// machine goes with it, with an exit status that says how.
pub fn shutdown(d: &Domain, reason: u32) {
    {
        let mut st = d.state.lock();
        if matches!(*st, DomState::Shutdown(_) | DomState::Dying) {
            return;
        }
        *st = DomState::Shutdown(reason);
    }
    for v in &d.vcpus {
        v.is_runnable.store(false, Ordering::Release);
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
    super::sched::domain_stopped(d);
}

/// Crashes `d` because of something it did: logged (rate limited), then shut down with reason
/// crash. The hypervisor and other domains carry on.
pub fn crash(d: &Domain, why: core::fmt::Arguments<'_>) {
    error!("domain {} ({}) crashed: {why}", d.id.0, d.name);
    shutdown(d, SHUTDOWN_CRASH);
}
