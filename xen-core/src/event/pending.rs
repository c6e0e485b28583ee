//! Event channels on the hypervisor side: setting a port pending in the shared_info bitmaps
//! exactly as the 2-level ABI lays them out, waking the vCPU that should hear it, VIRQs,
//! upcall delivery on the way back to a guest, and closing everything when a domain dies.
//! The port bookkeeping itself is `crate::event::ports`.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::event::ports::{self, Binding};
use hypercall_abi::shared_info::{SharedInfo, evtchn_word_bit};
use hypercall_abi::{DomId, EvtchnPort};

use crate::arch::entry::GuestRegs;
use crate::domain::{
    self, Domain, VI_PENDING_SEL, VI_UPCALL_MASK, VI_UPCALL_PENDING, Vcpu, VcpuContext,
};
use crate::mm::machine;
use crate::sched;
use crate::traps::entry;

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
        let hit =
            v.poll.lock().as_ref().is_some_and(|p| p.ports.is_empty() || p.ports.contains(&port));
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

/// On the way back to the guest: bounce to the event callback if an upcall is due.
pub fn deliver_upcall(v: &Vcpu, ctx: &mut VcpuContext, regs: &mut GuestRegs) {
    let pending = v.info_byte(VI_UPCALL_PENDING).load(Ordering::Acquire);
    let masked = v.info_byte(VI_UPCALL_MASK).load(Ordering::Acquire);
    if pending == 0 || masked != 0 || ctx.event_callback.address == 0 {
        return;
    }
    let Some(d) = domain::get(v.domain) else { return };
    let cb = ctx.event_callback.address;
    // The event callback always runs with further upcalls masked, as on Xen.
    entry::deliver(&d, v, ctx, regs, cb, true, None);
}

/// Runs `f` with the event-channel tables of `a` and `b` locked in a fixed order (lower domain
/// id first) so two CPUs binding in opposite directions cannot deadlock.
pub fn with_pair<R>(a: &Domain, b: &Domain, f: impl FnOnce(ports::Tables<'_>) -> R) -> R {
    if a.id == b.id {
        return f(ports::Tables::Same(&mut a.evtchn.lock()));
    }
    if a.id < b.id {
        let mut ta = a.evtchn.lock();
        let mut tb = b.evtchn.lock();
        f(ports::Tables::Pair(&mut ta, &mut tb))
    } else {
        let mut tb = b.evtchn.lock();
        let mut ta = a.evtchn.lock();
        f(ports::Tables::Pair(&mut ta, &mut tb))
    }
}

/// Closes `port` of `d`, unbinding the peer's end if it is another live domain.
pub fn close(d: &Arc<Domain>, port: EvtchnPort) -> Result<(), hypercall_abi::Errno> {
    let binding = d.evtchn.lock().get(port)?.binding;
    if let Binding::Interdomain { remote, .. } = binding
        && remote != d.id
        && let Some(peer) = domain::get(remote)
    {
        return with_pair(d, &peer, |t| match t {
            ports::Tables::Pair(local, peer) => ports::close(local, port, Some(peer)),
            ports::Tables::Same(local) => ports::close(local, port, None),
        });
    }
    ports::close(&mut d.evtchn.lock(), port, None)
}

/// Closes every port of a dying domain; its peers' ports become unbound.
pub fn close_all(d: &Arc<Domain>) {
    let ports: alloc::vec::Vec<EvtchnPort> = d.evtchn.lock().used_ports().map(|(p, _)| p).collect();
    for p in ports {
        let _ = close(d, p);
    }
}

/// The domain `dom` names for an operation of `d`: itself for DOMID_SELF or its own id, any
/// live domain for a privileged caller.
pub fn target_domain(d: &Arc<Domain>, dom: DomId) -> Result<Arc<Domain>, hypercall_abi::Errno> {
    if dom == DomId::SELF_ || dom == d.id {
        return Ok(d.clone());
    }
    if !d.is_privileged {
        return Err(hypercall_abi::Errno::EPERM);
    }
    domain::get(dom).ok_or(hypercall_abi::Errno::ESRCH)
}
