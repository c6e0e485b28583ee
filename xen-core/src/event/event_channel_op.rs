//! `event_channel_op`: each operation's argument is copied in once, acted on through the port
//! bookkeeping (`ports`) with the tables locked, and the result copied back.

use hypercall_abi::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_PIRQ,
    EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_RESET, EVTCHNOP_SEND,
    EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi,
    EvtchnBindPirq, EvtchnBindVcpu, EvtchnBindVirq, EvtchnPortOp, EvtchnReset, EvtchnStatus,
};
use hypercall_abi::{DomId, Errno};

use super::interdomain::{self, with_pair};
use super::irq;
use super::ports::{self, Tables};
use crate::domain::{self, target_domain};
use crate::event;
use crate::hypercall::{Hc, HcResult, copy_in, copy_out};

pub fn event_channel_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (cmd, arg) = (a[0] as u32, a[1]);
    let d = hc.dom.clone();
    match cmd {
        EVTCHNOP_ALLOC_UNBOUND => {
            let mut op: EvtchnAllocUnbound = copy_in(arg)?;
            let owner = target_domain(&d, op.dom)?;
            let remote = if op.remote_dom == DomId::SELF_ { owner.id } else { op.remote_dom };
            if remote.0 >= DomId::FIRST_RESERVED.0 {
                return Err(Errno::EINVAL);
            }
            op.port = owner.evtchn.lock().alloc_unbound(remote)?;
            copy_out(arg, &op)?;
        }
        EVTCHNOP_BIND_INTERDOMAIN => {
            let mut op: EvtchnBindInterdomain = copy_in(arg)?;
            let remote = if op.remote_dom == DomId::SELF_ {
                d.clone()
            } else {
                domain::get(op.remote_dom).ok_or(Errno::EINVAL)?
            };
            let lp = with_pair(&d, &remote, |t| match t {
                Tables::Same(t) => ports::bind_interdomain(Tables::Same(t), op.remote_port),
                Tables::Pair(local, remote_t) => {
                    ports::bind_interdomain(Tables::Pair(local, remote_t), op.remote_port)
                }
            })?;
            op.local_port = lp;
            // A notification sent to the unbound port may have been lost: raise one here.
            event::set_pending(&d, lp, 0);
            copy_out(arg, &op)?;
        }
        EVTCHNOP_BIND_VIRQ => {
            let mut op: EvtchnBindVirq = copy_in(arg)?;
            op.port = d.evtchn.lock().bind_virq(op.virq.0, op.vcpu)?;
            copy_out(arg, &op)?;
        }
        EVTCHNOP_BIND_PIRQ => {
            // Only a pirq the domain was given (`PHYSDEVOP_map_pirq`, dom0's): `EPERM` for
            // any other, as Xen answers a domain without access to the IRQ.
            let mut op: EvtchnBindPirq = copy_in(arg)?;
            irq::can_bind(d.id, op.pirq)?;
            let port = d.evtchn.lock().bind_pirq(op.pirq)?;
            if let Err(e) = irq::bind(d.id, op.pirq, port) {
                let _ = interdomain::close(&d, port);
                return Err(e);
            }
            op.port = port;
            copy_out(arg, &op)?;
        }
        EVTCHNOP_BIND_IPI => {
            let mut op: EvtchnBindIpi = copy_in(arg)?;
            op.port = d.evtchn.lock().bind_ipi(op.vcpu)?;
            copy_out(arg, &op)?;
        }
        EVTCHNOP_CLOSE => {
            let op: EvtchnPortOp = copy_in(arg)?;
            interdomain::close(&d, op.port)?;
        }
        EVTCHNOP_SEND => {
            let op: EvtchnPortOp = copy_in(arg)?;
            let target = {
                let binding = d.evtchn.lock().get(op.port)?.binding;
                match binding {
                    ports::Binding::Interdomain { remote, .. } if remote != d.id => {
                        match domain::get(remote) {
                            Some(peer) => with_pair(&d, &peer, |t| match t {
                                Tables::Pair(l, p) => ports::send_target(l, op.port, Some(p)),
                                Tables::Same(l) => ports::send_target(l, op.port, None),
                            })?
                            .map(|t| (peer, t)),
                            None => None,
                        }
                    }
                    _ => {
                        ports::send_target(&d.evtchn.lock(), op.port, None)?.map(|t| (d.clone(), t))
                    }
                }
            };
            if let Some((dom, t)) = target {
                event::set_pending(&dom, t.port, t.vcpu);
            }
        }
        EVTCHNOP_STATUS => {
            let mut op: EvtchnStatus = copy_in(arg)?;
            let owner = target_domain(&d, op.dom)?;
            let (detail, vcpu) = owner.evtchn.lock().status(op.port)?;
            op.set_detail(detail);
            op.vcpu = vcpu;
            copy_out(arg, &op)?;
        }
        EVTCHNOP_BIND_VCPU => {
            let op: EvtchnBindVcpu = copy_in(arg)?;
            let binding = {
                let mut t = d.evtchn.lock();
                t.bind_vcpu(op.port, op.vcpu)?;
                t.get(op.port)?.binding
            };
            if let ports::Binding::Pirq { pirq } = binding {
                irq::set_vcpu(d.id, pirq, op.vcpu);
            }
        }
        EVTCHNOP_UNMASK => {
            let op: EvtchnPortOp = copy_in(arg)?;
            let vcpu = d.evtchn.lock().get(op.port)?.vcpu;
            event::unmask(&d, op.port, vcpu);
        }
        EVTCHNOP_RESET => {
            let op: EvtchnReset = copy_in(arg)?;
            let owner = target_domain(&d, op.dom)?;
            interdomain::close_all(&owner);
        }
        _ => return Err(Errno::ENOSYS),
    }
    Ok(Some(0))
}
