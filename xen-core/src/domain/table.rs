//! Domains as data: the [`Domain`] record, where it is in its life ([`DomState`]), and the
//! table of live domains. A domain is shared (`Arc`) between the table, the scheduler and
//! whoever runs a hypercall on its behalf; its mutable parts sit behind their own locks. This
//! file acts on no subsystem: creating and tearing a domain down across them is `lifecycle`'s
//! work, above the subsystems.
//!
//! Lock order: domain table, a vCPU context, event-channel tables (lower domid first), the
//! scheduler, then `MM`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hypercall_abi::{DomId, Errno, Mfn};
use log::info;
use spin::{Mutex, RwLock};

use super::vcpu::Vcpu;
use crate::console::ratelimit::RateLimit;
use crate::event::ports::EvtchnTable;
use crate::grant::table::GrantTable;
use crate::mm::machine::with_mm;
use crate::mm::quota::HeapQuota;

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomState {
    Running,
    /// Shut down by itself (or crashed), with the SHUTDOWN_* reason; its memory is still held.
    Shutdown(u32),
    /// Being torn down.
    Dying,
}

/// A domain.
pub struct Domain {
    pub id: DomId,
    pub name: String,
    pub is_privileged: bool,
    pub shared_info: Mfn,
    /// Its pseudo-physical size in pages (one past the highest pfn populated): what its
    /// memory map shows and `maximum_gpfn` answers.
    pub nr_pages: AtomicU64,
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
    /// A domU's console lines are rate limited (`console_io`).
    pub console_limit: Mutex<RateLimit>,
    pub evtchn: Mutex<EvtchnTable>,
    pub grants: Mutex<GrantTable>,
    /// What the domain may make the hypervisor allocate for it, and what it has (its own
    /// records included).
    pub quota: Arc<HeapQuota>,
    /// Bytes of `quota` this record holds (its vCPUs, console line).
    pub record_charge: usize,
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.quota.uncharge(self.record_charge);
    }
}

impl Domain {
    /// Its pseudo-physical size in pages.
    pub fn nr_pages(&self) -> u64 {
        self.nr_pages.load(Ordering::Acquire)
    }

    /// Records that pfn `pfn` was populated: the domain is at least that large.
    pub fn note_pfn(&self, pfn: u64) {
        self.nr_pages.fetch_max(pfn.saturating_add(1), Ordering::AcqRel);
    }

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

static DOMAINS: RwLock<BTreeMap<DomId, Arc<Domain>>> = RwLock::new(BTreeMap::new());

/// The live domain `id`.
pub fn get(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.read().get(&id).cloned()
}

/// All live domains, in id order.
pub fn all() -> Vec<Arc<Domain>> {
    DOMAINS.read().values().cloned().collect()
}

/// Runs `f` on every domain, in id order, under the table's read lock (allocates nothing; `f`
/// may read the table but must not create or remove domains).
pub fn for_each(mut f: impl FnMut(&Arc<Domain>)) {
    for d in DOMAINS.read().values() {
        f(d);
    }
}

/// The first domain in the table (in id order) for which `pred` holds; allocates nothing.
pub fn find(pred: impl Fn(&Domain) -> bool) -> Option<Arc<Domain>> {
    DOMAINS.read().values().find(|d| pred(d)).cloned()
}

/// The first live domain with id >= `id`.
pub fn first_from(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.read().range(id..).next().map(|(_, d)| d.clone())
}

pub fn insert(d: Arc<Domain>) {
    DOMAINS.write().insert(d.id, d);
}

/// Whether `id` names no live domain, nor one whose frames are still coming back (a
/// destroyed domain another domain still maps: its accounting keeps the id until `reap`
/// forgets it).
pub fn is_free_id(id: DomId) -> bool {
    (1..DomId::FIRST_RESERVED.0).contains(&id.0)
        && !DOMAINS.read().contains_key(&id)
        && with_mm(|mm| mm.domain(id).is_none())
}

/// The last id [`next_free_id`] gave.
static ROVER: spin::Mutex<u16> = spin::Mutex::new(0);

/// The next free domain id after the last one given, wrapping below DOMID_FIRST_RESERVED, as
/// Xen's createdomain picks them: a domain built again (a reboot) gets a new id, and an id is
/// not reused while a toolstack may still hold the old one's.
pub fn next_free_id() -> Option<DomId> {
    let mut rover = ROVER.lock();
    let last = DomId::FIRST_RESERVED.0 - 1;
    let mut id = *rover;
    for _ in 0..last {
        id = if id >= last { 1 } else { id + 1 };
        if is_free_id(DomId(id)) {
            *rover = id;
            return Some(DomId(id));
        }
    }
    None
}

/// Forgets `d`: it is no longer live (its frames may still be on their way back; see
/// [`reap`]).
pub fn remove(id: DomId) {
    DOMAINS.write().remove(&id);
}

/// The domain `dom` names for an operation of `d`: itself for DOMID_SELF or its own id, any
/// live domain for a privileged caller.
pub fn target_domain(d: &Arc<Domain>, dom: DomId) -> Result<Arc<Domain>, Errno> {
    if dom == DomId::SELF_ || dom == d.id {
        return Ok(d.clone());
    }
    if !d.is_privileged {
        return Err(Errno::EPERM);
    }
    get(dom).ok_or(Errno::ESRCH)
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

/// Forgets destroyed domains whose last frames have come back (frames another domain still
/// mapped when they died return when it unmaps them), logging it: the proof that nothing
/// leaked. Called after destruction and after unmaps.
/// Allocates nothing: it walks the dying domains one at a time.
pub fn reap() {
    let mut from = DomId(0);
    // The domain table is read outside the memory lock (it comes first in the lock order).
    while let Some(id) = with_mm(|mm| mm.next_drained_dying(from)) {
        if get(id).is_none() && with_mm(|mm| mm.domain_forget(id)) {
            info!("domain {}: all frames returned", id.0);
        }
        match id.0.checked_add(1) {
            Some(n) => from = DomId(n),
            None => return,
        }
    }
}
