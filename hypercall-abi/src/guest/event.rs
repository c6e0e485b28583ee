//! Event-channel wrappers (`event_channel_op`). The typed helpers are safe: each op struct is
//! borrowed for the call and the hypervisor writes only its OUT fields.

use super::{ptr_of_mut, raw};
use crate::Errno;
use crate::errno::{HcResult, ret_to_result};
use crate::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_PIRQ,
    EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS,
    EVTCHNOP_UNMASK, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindPirq,
    EvtchnBindVcpu, EvtchnBindVirq, EvtchnPortOp, EvtchnStatus, EvtchnStatusDetail, Virq,
};
use crate::nr;
use crate::types::{DomId, EvtchnPort};
use zerocopy::{FromBytes, IntoBytes};

/// Any event-channel op (`event_channel_op(cmd, arg)`).
///
/// # Safety
///
/// `T` must be the struct of `cmd` (`EVTCHNOP_*`): the hypervisor reads and writes the size of
/// *that* struct through the pointer.
pub unsafe fn event_channel_op<T: IntoBytes + FromBytes>(cmd: u32, arg: &mut T) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; its type matching `cmd` is the caller's
    // contract.
    ret_to_result(unsafe { raw::hypercall2(nr::EVENT_CHANNEL_OP, cmd.into(), ptr_of_mut(arg)) })
}

/// Allocate a port in this domain that `remote` may bind to; returns the port (advertise it,
/// usually through XenStore).
pub fn evtchn_alloc_unbound(remote: DomId) -> Result<EvtchnPort, Errno> {
    evtchn_alloc_unbound_in(DomId::SELF_, remote)
}

/// Allocates a port of `dom` (itself, or any domain for the privileged domain) that `remote`
/// may bind to.
pub fn evtchn_alloc_unbound_in(dom: DomId, remote: DomId) -> Result<EvtchnPort, Errno> {
    let mut op = EvtchnAllocUnbound { dom, remote_dom: remote, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_alloc_unbound.
    unsafe { event_channel_op(EVTCHNOP_ALLOC_UNBOUND, &mut op) }?;
    Ok(op.port)
}

/// Connect to `remote_port`, an unbound port of `dom` allocated for us; returns the local port.
pub fn evtchn_bind_interdomain(dom: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut op = EvtchnBindInterdomain { remote_dom: dom, remote_port, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_bind_interdomain.
    unsafe { event_channel_op(EVTCHNOP_BIND_INTERDOMAIN, &mut op) }?;
    Ok(op.local_port)
}

/// Bind `virq` to `vcpu` (0 for a global VIRQ); returns the port.
pub fn evtchn_bind_virq(virq: Virq, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut op = EvtchnBindVirq { virq, vcpu, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_bind_virq.
    unsafe { event_channel_op(EVTCHNOP_BIND_VIRQ, &mut op) }?;
    Ok(op.port)
}

/// Bind a port to physical IRQ `pirq` (mapped to this domain first); returns the port.
pub fn evtchn_bind_pirq(pirq: u32, flags: u32) -> Result<EvtchnPort, Errno> {
    let mut op = EvtchnBindPirq { pirq, flags, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_bind_pirq.
    unsafe { event_channel_op(EVTCHNOP_BIND_PIRQ, &mut op) }?;
    Ok(op.port)
}

/// Bind an IPI port notifying `vcpu`; returns the port.
pub fn evtchn_bind_ipi(vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut op = EvtchnBindIpi { vcpu, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_bind_ipi.
    unsafe { event_channel_op(EVTCHNOP_BIND_IPI, &mut op) }?;
    Ok(op.port)
}

fn port_op(cmd: u32, port: EvtchnPort) -> HcResult {
    let mut op = EvtchnPortOp { port };
    // SAFETY: close, send and unmask all take exactly this 4-byte struct.
    unsafe { event_channel_op(cmd, &mut op) }
}

/// Notify the other end of `port`.
pub fn evtchn_send(port: EvtchnPort) -> HcResult {
    port_op(EVTCHNOP_SEND, port)
}

/// Close `port`; an interdomain peer returns to unbound.
pub fn evtchn_close(port: EvtchnPort) -> HcResult {
    port_op(EVTCHNOP_CLOSE, port)
}

/// Clear `port`'s mask bit and, if it is pending, deliver the upcall the mask suppressed.
/// (Clearing the bit in `shared_info` directly does not re-deliver.)
pub fn evtchn_unmask(port: EvtchnPort) -> HcResult {
    port_op(EVTCHNOP_UNMASK, port)
}

/// Status of `port` in domain `dom` (`DomId::SELF_` unless privileged).
pub fn evtchn_status(dom: DomId, port: EvtchnPort) -> Result<EvtchnStatus, Errno> {
    let mut op = EvtchnStatus { dom, port, ..Default::default() };
    // SAFETY: `op` is the struct of EVTCHNOP_status.
    unsafe { event_channel_op(EVTCHNOP_STATUS, &mut op) }?;
    Ok(op)
}

/// Make `port` notify `vcpu` from now on.
pub fn evtchn_bind_vcpu(port: EvtchnPort, vcpu: u32) -> HcResult {
    let mut op = EvtchnBindVcpu { port, vcpu };
    // SAFETY: `op` is the struct of EVTCHNOP_bind_vcpu.
    unsafe { event_channel_op(EVTCHNOP_BIND_VCPU, &mut op) }
}

/// This domain's id. A PV kernel is not told it (start_info has no field for it; Linux reads
/// `domid` from XenStore). This asks the event-channel code instead: a port allocated for
/// `DOMID_SELF` records the caller's real id as its remote end, which `EVTCHNOP_status`
/// reports; the port is closed again. Both Xen and xen-core answer this way.
pub fn own_domid() -> Result<DomId, Errno> {
    let port = evtchn_alloc_unbound(DomId::SELF_)?;
    let status = evtchn_status(DomId::SELF_, port);
    let closed = evtchn_close(port);
    match status?.detail() {
        EvtchnStatusDetail::Unbound { dom } => {
            closed?;
            Ok(dom)
        }
        _ => Err(Errno::EINVAL),
    }
}
