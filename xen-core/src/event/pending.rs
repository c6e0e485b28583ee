//! Raising an event: setting a port pending in the shared_info bitmaps exactly as the 2-level
//! ABI lays them out, marking the upcall in the target vCPU's `vcpu_info`, and waking it (or
//! a vCPU polling on the port) through the scheduler; VIRQs and unmasking. Delivering the
//! upcall itself happens on the way back to the guest (`traps::exit`). Which port is bound to
//! what is the bookkeeping in `ports`.
//!
//! The bitmaps are guest memory, shared and written by the guest at any moment: every access
//! is one atomic operation on a word (`mm::machine`), and port numbers are checked first.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::EvtchnPort;
use hypercall_abi::shared_info::{SharedInfo, evtchn_word_bit};

use crate::domain::{Domain, VI_PENDING_SEL, VI_UPCALL_MASK, VI_UPCALL_PENDING, Vcpu};
use crate::mm::machine;
use crate::sched;

/// shared_info's evtchn_pending and evtchn_mask bitmaps, as word indices.
const PENDING_WORD0: usize = core::mem::offset_of!(SharedInfo, evtchn_pending) / 8;
const MASK_WORD0: usize = core::mem::offset_of!(SharedInfo, evtchn_mask) / 8;

fn pending_word(d: &Domain, port: EvtchnPort) -> &'static AtomicU64 {
    machine::frame_word(d.shared_info, PENDING_WORD0 + evtchn_word_bit(port).0)
}

fn mask_word(d: &Domain, port: EvtchnPort) -> &'static AtomicU64 {
    machine::frame_word(d.shared_info, MASK_WORD0 + evtchn_word_bit(port).0)
}

/// Sets `port` of `d` pending and, if it is not masked and its selector bit was clear, raises
/// the upcall on vCPU `vcpu` and wakes it. A vCPU polling on the port wakes either way.
pub fn set_pending(d: &Domain, port: EvtchnPort, vcpu: u32) {
    if port.0 == 0 || port.0 >= hypercall_abi::shared_info::NR_EVENT_CHANNELS {
        return;
    }
    let bit = 1u64 << evtchn_word_bit(port).1;
    if pending_word(d, port).fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return;
    }
    let v = d.vcpus.get(vcpu as usize).or_else(|| d.vcpus.first());
    let Some(v) = v else { return };
    if mask_word(d, port).load(Ordering::SeqCst) & bit == 0 {
        mark_upcall(v, port);
    }
    wake_pollers(d, port);
}

/// Sets the selector bit and upcall flag for `port` on `v`, waking it.
fn mark_upcall(v: &Arc<Vcpu>, port: EvtchnPort) {
    let sel = 1u64 << evtchn_word_bit(port).0;
    if v.info_word(VI_PENDING_SEL).fetch_or(sel, Ordering::SeqCst) & sel == 0 {
        v.info_byte(VI_UPCALL_PENDING).store(1, Ordering::SeqCst);
        sched::wake(v);
    }
}

fn wake_pollers(d: &Domain, port: EvtchnPort) {
    for v in &d.vcpus {
        let hit = v.poll.lock().as_ref().is_some_and(|p| p.wakes_on(port));
        if hit {
            *v.poll.lock() = None;
            v.poll_deadline.store(0, Ordering::Release);
            sched::wake(v);
        }
    }
}

/// Whether `port` of `d` is pending (SCHEDOP_poll checks this).
pub fn is_pending(d: &Domain, port: EvtchnPort) -> bool {
    port.0 < hypercall_abi::shared_info::NR_EVENT_CHANNELS
        && pending_word(d, port).load(Ordering::SeqCst) & (1u64 << evtchn_word_bit(port).1) != 0
}

/// EVTCHNOP_unmask: clears the mask and re-raises the upcall if the port is pending.
pub fn unmask(d: &Domain, port: EvtchnPort, vcpu: u32) {
    let bit = 1u64 << evtchn_word_bit(port).1;
    let was = mask_word(d, port).fetch_and(!bit, Ordering::SeqCst);
    if was & bit != 0
        && pending_word(d, port).load(Ordering::SeqCst) & bit != 0
        && let Some(v) = d.vcpus.get(vcpu as usize)
    {
        mark_upcall(v, port);
    }
}

/// Raises `virq` for `vcpu` of `d`, if the domain bound it.
pub fn send_virq(d: &Domain, vcpu: u32, virq: u32) {
    let found = {
        let t = d.evtchn.lock();
        t.virq_port(virq, vcpu).map(|p| (p, t.get(p).map_or(vcpu, |x| x.vcpu)))
    };
    if let Some((port, target)) = found {
        set_pending(d, port, target);
    }
}

/// Whether `v` has an unmasked upcall pending (checked without locking its context).
pub fn upcall_due(v: &Vcpu) -> bool {
    v.info_byte(VI_UPCALL_PENDING).load(Ordering::Acquire) != 0
        && v.info_byte(VI_UPCALL_MASK).load(Ordering::Acquire) == 0
}
