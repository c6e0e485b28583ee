//! Event channels from the kernel's side: the shared_info page (mapped at boot), a handler per
//! port, dispatch by the 2-level scan (selector word, then pending & !mask), and waiting.
//!
//! Events stay masked (`evtchn_upcall_mask = 1`) except while the kernel waits: `wait` blocks
//! with SCHEDOP_block, which unmasks; the upcall runs the handlers on the way back; then events
//! are masked again. So handlers run only at those points and never interrupt code holding a
//! lock they might need.

use alloc::collections::BTreeMap;
use core::mem::offset_of;
use core::sync::atomic::Ordering;

use hypercall_abi::event_channel::{VIRQ_TIMER, Virq};
use hypercall_abi::guest;
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, evtchn_word_bit};
use hypercall_abi::{DomId, Errno, EvtchnPort};
use spin::{Mutex, Once};

use crate::arch::TrapFrame;
use crate::memory::shared::SharedPage;

/// shared_info offsets: vcpu_info[0]'s flags and selector, the pending and mask bitmaps.
const VCPU0: usize = offset_of!(SharedInfo, vcpu_info);
const UPCALL_PENDING: usize = VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_pending);
const UPCALL_MASK: usize = VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_mask);
const PENDING_SEL: usize = VCPU0 + offset_of!(VcpuInfo, evtchn_pending_sel);
const PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
const MASK: usize = offset_of!(SharedInfo, evtchn_mask);

/// The bitmap word (byte offset within a bitmap) and bit of `port`.
fn word_bit(port: EvtchnPort) -> (usize, u64) {
    let (w, b) = evtchn_word_bit(port);
    (w * 8, 1u64 << b)
}

/// A port's handler: runs in the upcall, with events masked.
pub type Handler = fn(EvtchnPort);

static SHARED_INFO: Once<SharedPage> = Once::new();
static HANDLERS: Mutex<BTreeMap<u32, Handler>> = Mutex::new(BTreeMap::new());
static TIMER_EVENTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many VIRQ_TIMER events have been dispatched so far.
pub fn timer_events() -> u64 {
    TIMER_EVENTS.load(Ordering::SeqCst)
}

/// The shared_info page (mapped at boot).
pub fn shared_info() -> SharedPage {
    *SHARED_INFO.get().expect("events::init ran at boot")
}

/// Maps shared_info, installs the upcall handler and binds VIRQ_TIMER. The 10 ms periodic
/// timer every PV vCPU starts with is stopped, as Linux does: this kernel asks for the timer
/// events it wants (single-shot, through `time`).
pub fn init(si: &hypercall_abi::start_info::StartInfo) {
    let _ = guest::vcpu_stop_periodic_timer(0);
    let page =
        crate::memory::pages::map_frame(si.shared_info.frame()).expect("a slot for shared_info");
    SHARED_INFO.call_once(|| page);
    crate::traps::set_event_hook(upcall);
    if let Ok(port) = guest::evtchn_bind_virq(Virq(VIRQ_TIMER), 0) {
        on(port, |_| {
            TIMER_EVENTS.fetch_add(1, Ordering::SeqCst);
        });
        let _ = unmask(port);
    }
}

/// Registers `h` for `port` (replacing any earlier handler).
pub fn on(port: EvtchnPort, h: Handler) {
    HANDLERS.lock().insert(port.0, h);
}

static QUEUED: Mutex<alloc::collections::BTreeSet<u32>> =
    Mutex::new(alloc::collections::BTreeSet::new());

fn queue_handler(port: EvtchnPort) {
    QUEUED.lock().insert(port.0);
}

/// Registers a handler that only records that `port` fired; [`take_queued`] collects them.
/// For services whose work cannot run in the upcall (dom0's back ends).
pub fn on_queue(port: EvtchnPort) {
    on(port, queue_handler);
}

/// The ports recorded by [`on_queue`] handlers since the last call.
pub fn take_queued() -> alloc::vec::Vec<EvtchnPort> {
    core::mem::take(&mut *QUEUED.lock()).into_iter().map(EvtchnPort).collect()
}

/// Forgets `port`'s handler.
pub fn off(port: EvtchnPort) {
    HANDLERS.lock().remove(&port.0);
}

fn upcall(_frame: &mut TrapFrame) {
    dispatch();
}

/// Runs the handler of every pending, unmasked port (clearing it first, so an event that
/// arrives while the handler runs is seen on the next scan).
pub fn dispatch() {
    let s = shared_info();
    loop {
        s.u8_at(UPCALL_PENDING).store(0, Ordering::SeqCst);
        let sel = s.u64_at(PENDING_SEL).swap(0, Ordering::SeqCst);
        if sel == 0 {
            return;
        }
        for w in (0..64).filter(|w| sel & (1 << w) != 0) {
            let ready = s.u64_at(PENDING + w * 8).load(Ordering::SeqCst)
                & !s.u64_at(MASK + w * 8).load(Ordering::SeqCst);
            for b in (0..64).filter(|b| ready & (1u64 << b) != 0) {
                s.u64_at(PENDING + w * 8).fetch_and(!(1u64 << b), Ordering::SeqCst);
                let port = EvtchnPort((w * 64 + b) as u32);
                let h = HANDLERS.lock().get(&port.0).copied();
                if let Some(h) = h {
                    h(port);
                }
            }
        }
    }
}

/// Sleeps until an event arrives (returns at once if one is pending), runs the handlers, and
/// masks events again.
pub fn wait() {
    let s = shared_info();
    let _ = guest::sched_block();
    s.u8_at(UPCALL_MASK).store(1, Ordering::SeqCst);
    dispatch();
}

/// Whether `port` is pending (masked or not).
pub fn is_pending(port: EvtchnPort) -> bool {
    let (w, bit) = word_bit(port);
    shared_info().u64_at(PENDING + w).load(Ordering::SeqCst) & bit != 0
}

/// Clears `port`'s pending bit.
pub fn clear(port: EvtchnPort) {
    let (w, bit) = word_bit(port);
    shared_info().u64_at(PENDING + w).fetch_and(!bit, Ordering::SeqCst);
}

/// Masks `port`.
pub fn mask(port: EvtchnPort) {
    let (w, bit) = word_bit(port);
    shared_info().u64_at(MASK + w).fetch_or(bit, Ordering::SeqCst);
}

/// Unmasks `port` (through the hypervisor, which re-raises it if it is pending).
pub fn unmask(port: EvtchnPort) -> Result<(), Errno> {
    guest::evtchn_unmask(port).map(|_| ())
}

/// A port bound to `remote_port` of `dom`, with `h` as its handler and unmasked.
pub fn bind_interdomain(
    dom: DomId,
    remote_port: EvtchnPort,
    h: Handler,
) -> Result<EvtchnPort, Errno> {
    attach(guest::evtchn_bind_interdomain(dom, remote_port)?, h)
}

/// A port `remote` may bind to, with `h` as its handler and unmasked.
pub fn alloc_unbound(remote: DomId, h: Handler) -> Result<EvtchnPort, Errno> {
    attach(guest::evtchn_alloc_unbound(remote)?, h)
}

fn attach(port: EvtchnPort, h: Handler) -> Result<EvtchnPort, Errno> {
    on(port, h);
    unmask(port)?;
    Ok(port)
}

/// Notifies the other end of `port`.
pub fn send(port: EvtchnPort) -> Result<(), Errno> {
    guest::evtchn_send(port).map(|_| ())
}
