//! Event-channel bookkeeping for one domain (the 2-level ABI): which ports exist, what each is
//! bound to, and which vCPU it notifies. Operations that involve two domains (binding,
//! closing, sending between them) are free functions over both tables, so the hypervisor can
//! lock the two in a fixed order. Nothing here touches the shared_info bitmaps: an operation
//! answers *which* (domain, port) must be set pending, and the caller does it.
//!
//! Port numbers are guest input: every lookup is bounds checked, a free port is `EINVAL`, and a
//! domain's table grows only up to its own limit (`ENOSPC` beyond).

use alloc::sync::Arc;
use alloc::vec::Vec;

use hypercall_abi::event_channel::{EvtchnStatusDetail, NR_VIRQS, virq_is_per_vcpu};
use hypercall_abi::{DomId, Errno, EvtchnPort};

use crate::mm::quota::{HeapQuota, try_grow};

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Free,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        remote_port: EvtchnPort,
    },
    Virq {
        virq: u32,
    },
    Ipi,
    /// A physical IRQ the domain was given (`event::pirq`).
    Pirq {
        pirq: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    pub binding: Binding,
    /// vCPU notified when the port becomes pending.
    pub vcpu: u32,
}

const FREE: Port = Port { binding: Binding::Free, vcpu: 0 };

/// One domain's event channels. The port table grows in chunks, charged to the domain's
/// heap quota and fallibly (`ENOSPC` past either limit).
#[derive(Debug)]
pub struct EvtchnTable {
    dom: DomId,
    ports: Vec<Port>,
    max_ports: u32,
    nr_vcpus: u32,
    /// Port of each (vCPU, VIRQ) binding, `vcpu * NR_VIRQS + virq`.
    virqs: Vec<u32>,
    quota: Arc<HeapQuota>,
    /// Bytes of `quota` this table holds.
    charged: usize,
}

/// Most event channels a domain may have: dom0 serves every guest, a domU needs a few dozen.
pub const MAX_PORTS_DOMU: u32 = 1024;
pub const MAX_PORTS_DOM0: u32 = 4096;

/// Ports added to the table at a time.
const PORT_CHUNK: usize = 64;

impl EvtchnTable {
    /// A table for `dom` with `nr_vcpus` vCPUs and at most `max_ports` ports (port 0 is never
    /// used: it means "none" in the ABI), charging `quota`.
    pub fn new(
        dom: DomId,
        nr_vcpus: u32,
        max_ports: u32,
        quota: Arc<HeapQuota>,
    ) -> Result<Self, Errno> {
        let nr_vcpus = nr_vcpus.max(1);
        let mut t = Self {
            dom,
            ports: Vec::new(),
            max_ports: max_ports.clamp(2, hypercall_abi::shared_info::NR_EVENT_CHANNELS),
            nr_vcpus,
            virqs: Vec::new(),
            quota,
            charged: 0,
        };
        let n = (nr_vcpus * NR_VIRQS) as usize;
        t.charged += try_grow(&mut t.virqs, n, &t.quota)?;
        t.virqs.resize(n, 0);
        t.charged += try_grow(&mut t.ports, 1, &t.quota)?;
        t.ports.push(FREE);
        Ok(t)
    }

    /// The port, if it is in use.
    pub fn get(&self, port: EvtchnPort) -> Result<Port, Errno> {
        match self.ports.get(port.0 as usize) {
            Some(p) if p.binding != Binding::Free && port.0 != 0 => Ok(*p),
            _ => Err(Errno::EINVAL),
        }
    }

    fn slot(&mut self, port: EvtchnPort) -> Result<&mut Port, Errno> {
        match self.ports.get_mut(port.0 as usize) {
            Some(p) if p.binding != Binding::Free && port.0 != 0 => Ok(p),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Lowest free port, growing the table within the limit.
    fn alloc(&mut self, binding: Binding, vcpu: u32) -> Result<EvtchnPort, Errno> {
        let i = match self.ports.iter().skip(1).position(|p| p.binding == Binding::Free) {
            Some(i) => i + 1,
            None if (self.ports.len() as u32) < self.max_ports => {
                if self.ports.len() == self.ports.capacity() {
                    let room = (self.max_ports as usize - self.ports.len()).min(PORT_CHUNK);
                    self.charged +=
                        try_grow(&mut self.ports, room, &self.quota).map_err(|_| Errno::ENOSPC)?;
                }
                self.ports.push(FREE);
                self.ports.len() - 1
            }
            None => return Err(Errno::ENOSPC),
        };
        self.ports[i] = Port { binding, vcpu };
        Ok(EvtchnPort(i as u32))
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), Errno> {
        if vcpu < self.nr_vcpus { Ok(()) } else { Err(Errno::ENOENT) }
    }

    /// EVTCHNOP_alloc_unbound: a port `remote` may later bind to.
    pub fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, Errno> {
        self.alloc(Binding::Unbound { remote }, 0)
    }

    /// EVTCHNOP_bind_virq.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<EvtchnPort, Errno> {
        if virq >= NR_VIRQS {
            return Err(Errno::EINVAL);
        }
        self.check_vcpu(vcpu)?;
        // Global VIRQs are bound on vCPU 0 only (and may be moved with bind_vcpu).
        if !virq_is_per_vcpu(virq) && vcpu != 0 {
            return Err(Errno::EINVAL);
        }
        let idx = (vcpu * NR_VIRQS + virq) as usize;
        if self.virqs[idx] != 0 {
            return Err(Errno::EEXIST);
        }
        let port = self.alloc(Binding::Virq { virq }, vcpu)?;
        self.virqs[idx] = port.0;
        Ok(port)
    }

    /// EVTCHNOP_bind_pirq: a port for `pirq` (which the caller checked the domain may bind),
    /// notifying vCPU 0 until moved.
    pub fn bind_pirq(&mut self, pirq: u32) -> Result<EvtchnPort, Errno> {
        self.alloc(Binding::Pirq { pirq }, 0)
    }

    /// EVTCHNOP_bind_ipi.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<EvtchnPort, Errno> {
        self.check_vcpu(vcpu)?;
        self.alloc(Binding::Ipi, vcpu)
    }

    /// The port bound to `virq` on `vcpu` (global VIRQs: on vCPU 0).
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<EvtchnPort> {
        let vcpu = if virq_is_per_vcpu(virq) { vcpu } else { 0 };
        let p = *self.virqs.get((vcpu * NR_VIRQS + virq) as usize)?;
        (p != 0).then_some(EvtchnPort(p))
    }

    /// EVTCHNOP_bind_vcpu: IPIs and per-vCPU VIRQs keep their vCPU.
    pub fn bind_vcpu(&mut self, port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
        self.check_vcpu(vcpu)?;
        let p = self.slot(port)?;
        match p.binding {
            Binding::Ipi => Err(Errno::EINVAL),
            Binding::Virq { virq } if virq_is_per_vcpu(virq) => Err(Errno::EINVAL),
            _ => {
                p.vcpu = vcpu;
                Ok(())
            }
        }
    }

    /// EVTCHNOP_status for this table's port.
    pub fn status(&self, port: EvtchnPort) -> Result<(EvtchnStatusDetail, u32), Errno> {
        if port.0 as usize >= self.ports.len() || port.0 == 0 {
            // A port number within the ABI's range but never allocated is simply closed.
            return if port.0 < hypercall_abi::shared_info::NR_EVENT_CHANNELS && port.0 != 0 {
                Ok((EvtchnStatusDetail::Closed, 0))
            } else {
                Err(Errno::EINVAL)
            };
        }
        let p = self.ports[port.0 as usize];
        let d = match p.binding {
            Binding::Free => EvtchnStatusDetail::Closed,
            Binding::Unbound { remote } => EvtchnStatusDetail::Unbound { dom: remote },
            Binding::Interdomain { remote, remote_port } => {
                EvtchnStatusDetail::Interdomain { dom: remote, port: remote_port }
            }
            Binding::Virq { virq } => EvtchnStatusDetail::Virq(virq),
            Binding::Ipi => EvtchnStatusDetail::Ipi,
            Binding::Pirq { pirq } => EvtchnStatusDetail::Pirq(pirq),
        };
        Ok((d, p.vcpu))
    }

    /// Ports in use, for teardown.
    /// The first port in use at or after `from`.
    pub fn next_used_port(&self, from: EvtchnPort) -> Option<EvtchnPort> {
        let start = (from.0 as usize).max(1);
        let i = self.ports.get(start..)?.iter().position(|p| p.binding != Binding::Free)?;
        Some(EvtchnPort((start + i) as u32))
    }

    pub fn used_ports(&self) -> impl Iterator<Item = (EvtchnPort, Port)> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(i, p)| *i != 0 && p.binding != Binding::Free)
            .map(|(i, p)| (EvtchnPort(i as u32), *p))
    }

    fn free(&mut self, port: EvtchnPort) {
        if let Binding::Virq { virq } = self.ports[port.0 as usize].binding {
            let vcpu = if virq_is_per_vcpu(virq) { self.ports[port.0 as usize].vcpu } else { 0 };
            self.virqs[(vcpu * NR_VIRQS + virq) as usize] = 0;
        }
        self.ports[port.0 as usize] = FREE;
    }
}

/// Where a notification must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub dom: DomId,
    pub port: EvtchnPort,
    pub vcpu: u32,
}

/// The tables an operation may touch: the caller's, and the peer's when it is another domain.
pub enum Tables<'a> {
    Same(&'a mut EvtchnTable),
    Pair(&'a mut EvtchnTable, &'a mut EvtchnTable),
}

/// EVTCHNOP_bind_interdomain: `local` binds to `remote_port` of `remote`, which must be an
/// unbound port offered to `local`'s domain. Returns the new local port; it must be set
/// pending (a notification may have been sent to the unbound port and lost).
pub fn bind_interdomain(tables: Tables<'_>, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    match tables {
        Tables::Same(t) => {
            let me = t.dom;
            let rp = t.get(remote_port)?;
            if rp.binding != (Binding::Unbound { remote: me }) {
                return Err(Errno::EINVAL);
            }
            let lp = t.alloc(Binding::Interdomain { remote: me, remote_port }, 0)?;
            t.slot(remote_port)?.binding = Binding::Interdomain { remote: me, remote_port: lp };
            Ok(lp)
        }
        Tables::Pair(local, remote) => {
            let rp = remote.get(remote_port)?;
            if rp.binding != (Binding::Unbound { remote: local.dom }) {
                return Err(Errno::EINVAL);
            }
            let lp = local.alloc(Binding::Interdomain { remote: remote.dom, remote_port }, 0)?;
            remote.slot(remote_port)?.binding =
                Binding::Interdomain { remote: local.dom, remote_port: lp };
            Ok(lp)
        }
    }
}

/// EVTCHNOP_close. An interdomain port's peer becomes unbound again (bindable by us).
/// `peer` is the table of the port's remote domain when that is another, live domain.
pub fn close(
    local: &mut EvtchnTable,
    port: EvtchnPort,
    peer: Option<&mut EvtchnTable>,
) -> Result<(), Errno> {
    let p = local.get(port)?;
    if let Binding::Interdomain { remote, remote_port } = p.binding {
        let me = local.dom;
        if remote == me {
            if let Ok(rp) = local.slot(remote_port) {
                rp.binding = Binding::Unbound { remote: me };
            }
        } else if let Some(peer) = peer
            && peer.dom == remote
            && let Ok(rp) = peer.slot(remote_port)
            && rp.binding == (Binding::Interdomain { remote: me, remote_port: port })
        {
            rp.binding = Binding::Unbound { remote: me };
        }
    }
    local.free(port);
    Ok(())
}

/// EVTCHNOP_send: where the notification goes (`None`: dropped, as for an unbound port).
pub fn send_target(
    local: &EvtchnTable,
    port: EvtchnPort,
    peer: Option<&EvtchnTable>,
) -> Result<Option<Target>, Errno> {
    let p = local.get(port)?;
    match p.binding {
        Binding::Interdomain { remote, remote_port } => {
            let table =
                if remote == local.dom { Some(local) } else { peer.filter(|t| t.dom == remote) };
            Ok(table.and_then(|t| t.get(remote_port).ok()).map(|rp| Target {
                dom: remote,
                port: remote_port,
                vcpu: rp.vcpu,
            }))
        }
        Binding::Ipi => Ok(Some(Target { dom: local.dom, port, vcpu: p.vcpu })),
        Binding::Unbound { .. } => Ok(None),
        Binding::Virq { .. } | Binding::Pirq { .. } | Binding::Free => Err(Errno::EINVAL),
    }
}

impl Drop for EvtchnTable {
    fn drop(&mut self) {
        self.quota.uncharge(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dom: DomId, nr_vcpus: u32, max_ports: u32) -> EvtchnTable {
        EvtchnTable::new(dom, nr_vcpus, max_ports, Arc::new(HeapQuota::new(1 << 20))).unwrap()
    }

    const A: DomId = DomId(1);
    const B: DomId = DomId(2);

    #[test]
    fn interdomain_lifecycle() {
        let (mut a, mut b) = (table(A, 1, 64), table(B, 1, 64));
        let pa = a.alloc_unbound(B).unwrap();
        assert_eq!(pa, EvtchnPort(1));
        // Only the named domain may bind.
        let mut c = table(DomId(3), 1, 64);
        assert_eq!(bind_interdomain(Tables::Pair(&mut c, &mut a), pa), Err(Errno::EINVAL));
        let pb = bind_interdomain(Tables::Pair(&mut b, &mut a), pa).unwrap();
        assert_eq!(
            send_target(&a, pa, Some(&b)).unwrap(),
            Some(Target { dom: B, port: pb, vcpu: 0 })
        );
        assert_eq!(
            send_target(&b, pb, Some(&a)).unwrap(),
            Some(Target { dom: A, port: pa, vcpu: 0 })
        );
        // Binding twice fails: the port is no longer unbound.
        assert_eq!(bind_interdomain(Tables::Pair(&mut b, &mut a), pa), Err(Errno::EINVAL));
        // B closes: A's end is unbound again, and sends on it are dropped.
        close(&mut b, pb, Some(&mut a)).unwrap();
        assert_eq!(a.status(pa).unwrap().0, EvtchnStatusDetail::Unbound { dom: B });
        assert_eq!(send_target(&a, pa, Some(&b)).unwrap(), None);
        assert_eq!(send_target(&b, pb, Some(&a)), Err(Errno::EINVAL));
        assert_eq!(b.status(pb).unwrap().0, EvtchnStatusDetail::Closed);
    }

    #[test]
    fn loopback_and_ipi() {
        let mut a = table(A, 2, 64);
        let p = a.alloc_unbound(A).unwrap();
        let q = bind_interdomain(Tables::Same(&mut a), p).unwrap();
        assert_eq!(send_target(&a, q, None).unwrap().unwrap().port, p);
        let i = a.bind_ipi(1).unwrap();
        assert_eq!(send_target(&a, i, None).unwrap(), Some(Target { dom: A, port: i, vcpu: 1 }));
        assert_eq!(a.bind_ipi(2), Err(Errno::ENOENT));
        assert_eq!(a.bind_vcpu(i, 0), Err(Errno::EINVAL));
        close(&mut a, q, None).unwrap();
        assert_eq!(a.status(p).unwrap().0, EvtchnStatusDetail::Unbound { dom: A });
    }

    #[test]
    fn virqs() {
        let mut a = table(A, 2, 64);
        let t1 = a.bind_virq(0, 1).unwrap();
        assert_eq!(a.virq_port(0, 1), Some(t1));
        assert_eq!(a.virq_port(0, 0), None);
        assert_eq!(a.bind_virq(0, 1), Err(Errno::EEXIST));
        assert_eq!(a.bind_virq(3, 1), Err(Errno::EINVAL), "global VIRQ on vCPU 1");
        assert_eq!(a.bind_virq(99, 0), Err(Errno::EINVAL));
        let g = a.bind_virq(3, 0).unwrap();
        a.bind_vcpu(g, 1).unwrap();
        assert_eq!(a.virq_port(3, 1), Some(g), "global VIRQs are found whatever the vCPU");
        assert_eq!(send_target(&a, g, None), Err(Errno::EINVAL));
        close(&mut a, t1, None).unwrap();
        assert_eq!(a.virq_port(0, 1), None);
        a.bind_virq(0, 1).unwrap();
    }

    #[test]
    fn pirq_ports() {
        let mut a = table(A, 1, 64);
        let p = a.bind_pirq(11).unwrap();
        assert_eq!(a.status(p).unwrap(), (EvtchnStatusDetail::Pirq(11), 0));
        assert_eq!(send_target(&a, p, None), Err(Errno::EINVAL), "a pirq port is not sent on");
        close(&mut a, p, None).unwrap();
        assert_eq!(a.status(p).unwrap().0, EvtchnStatusDetail::Closed);
    }

    #[test]
    fn hostile_port_numbers_and_limits() {
        let mut a = table(A, 1, 8);
        for bad in [0, 1, 7, 4095, 4096, u32::MAX] {
            assert_eq!(a.get(EvtchnPort(bad)), Err(Errno::EINVAL));
            assert_eq!(close(&mut a, EvtchnPort(bad), None), Err(Errno::EINVAL));
            assert_eq!(send_target(&a, EvtchnPort(bad), None), Err(Errno::EINVAL));
        }
        assert_eq!(a.status(EvtchnPort(4096)), Err(Errno::EINVAL));
        assert_eq!(a.status(EvtchnPort(100)).unwrap().0, EvtchnStatusDetail::Closed);
        for _ in 1..8 {
            a.alloc_unbound(B).unwrap();
        }
        assert_eq!(a.alloc_unbound(B), Err(Errno::ENOSPC));
        close(&mut a, EvtchnPort(3), None).unwrap();
        assert_eq!(a.alloc_unbound(B), Ok(EvtchnPort(3)), "lowest free port is reused");
    }

    #[test]
    fn the_port_table_grows_only_within_the_quota() {
        let q = Arc::new(HeapQuota::new(2048));
        let mut t = EvtchnTable::new(A, 1, 1024, q.clone()).unwrap();
        let mut got = 0;
        while t.alloc_unbound(B).is_ok() {
            got += 1;
        }
        // One chunk fits beside the VIRQ table; the second is over the quota.
        assert!(got > 0 && got < 1023, "{got} ports");
        assert_eq!(t.alloc_unbound(B), Err(Errno::ENOSPC));
        assert!(q.used() <= q.limit());
        drop(t);
        assert_eq!(q.used(), 0);
    }
}
