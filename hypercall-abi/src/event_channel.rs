//! `event_channel_op` (hypercall 32) and virtual IRQ numbers.
//!
//! An event channel is a pair of ports, or a port bound to a VIRQ, a physical IRQ or an IPI.
//! Sending on a port sets the peer's pending bit in its `shared_info` (see
//! [`crate::shared_info`]): if the port is unmasked and its selector bit was clear, the
//! hypervisor also sets `evtchn_pending_sel` and `evtchn_upcall_pending` and kicks the vCPU.
//! We implement the 2-level ABI only (4096 ports per domain).
//!
//! Every op takes a pointer to its struct; IN fields are written by the caller, OUT fields by
//! the hypervisor on success.

use crate::types::{DomId, EvtchnPort};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Connect to an unbound port of another domain ([`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a VIRQ on a vCPU ([`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ ([`EvtchnBindPirq`], privileged).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port ([`EvtchnClose`]); an interdomain peer goes back to unbound.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Notify the other end ([`EvtchnSend`]).
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port ([`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port that a given remote domain may bind to ([`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Bind an IPI port on a vCPU ([`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Change the vCPU a port notifies ([`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port and deliver its pending event ([`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all ports of a domain ([`EvtchnReset`]).
pub const EVTCHNOP_RESET: u32 = 10;
/// FIFO ABI: set up a control block. Not implemented by us (2-level only).
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// FIFO ABI: add an event-array page. Not implemented by us.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// FIFO ABI: set a port's priority. Not implemented by us.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// Ports in the 2-level ABI (same as [`crate::shared_info::NR_EVENT_CHANNELS`]).
pub const EVTCHN_2L_NR_CHANNELS: u32 = crate::shared_info::NR_EVENT_CHANNELS;

/// Status: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Status: allocated, waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Status: connected to a remote port.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Status: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Status: bound to a VIRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Status: bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `EvtchnBindPirq::flags`: the IRQ may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

// ---- Virtual IRQs (xen.h). Per-vCPU ones bind once per vCPU; global ones once, on vCPU 0. ----

/// Per-vCPU: timer (periodic, `set_timer_op`, singleshot).
pub const VIRQ_TIMER: u32 = 0;
/// Per-vCPU: dump debug state.
pub const VIRQ_DEBUG: u32 = 1;
/// Global (dom0): bytes arrived on the hypervisor console.
pub const VIRQ_CONSOLE: u32 = 2;
/// Global (dom0): a domain crashed or shut down.
pub const VIRQ_DOM_EXC: u32 = 3;
/// Global (dom0): trace buffer records available.
pub const VIRQ_TBUF: u32 = 4;
/// Global (dom0): a domain paused for the debugger.
pub const VIRQ_DEBUGGER: u32 = 6;
/// Per-vCPU: profiling sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// Global: bytes on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// Global: physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Global: memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Per-domain: Argo message.
pub const VIRQ_ARGO: u32 = 11;
/// Global: hypervisor heap is low.
pub const VIRQ_ENOMEM: u32 = 12;
/// Per-vCPU: PMU interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// First architecture-specific VIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// Last architecture-specific VIRQ.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of VIRQs.
pub const NR_VIRQS: u32 = 24;

/// True for VIRQs bound per vCPU (each vCPU binds its own; the binding is fixed).
#[must_use]
pub const fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// A virtual IRQ number, as a guest passes it to `EVTCHNOP_bind_virq`: the typed form of the
/// `VIRQ_*` values (`Virq::TIMER` is `VIRQ_TIMER`). Any `u32` can be written (the hypervisor
/// refuses an unknown one with `EINVAL`), so this is a newtype, not an enum.
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct Virq(pub u32);

impl Virq {
    /// [`VIRQ_TIMER`]: per-vCPU timer (periodic, `set_timer_op`, single-shot).
    pub const TIMER: Virq = Virq(VIRQ_TIMER);
    /// [`VIRQ_DEBUG`]: per-vCPU debug request.
    pub const DEBUG: Virq = Virq(VIRQ_DEBUG);
    /// [`VIRQ_CONSOLE`]: global (dom0), hypervisor console input.
    pub const CONSOLE: Virq = Virq(VIRQ_CONSOLE);
    /// [`VIRQ_DOM_EXC`]: global (dom0), a domain shut down or crashed.
    pub const DOM_EXC: Virq = Virq(VIRQ_DOM_EXC);
    /// [`VIRQ_TBUF`]: global (dom0), trace records.
    pub const TBUF: Virq = Virq(VIRQ_TBUF);
    /// [`VIRQ_DEBUGGER`]: global (dom0), a domain paused for the debugger.
    pub const DEBUGGER: Virq = Virq(VIRQ_DEBUGGER);
    /// [`VIRQ_XENOPROF`]: per-vCPU profiling sample.
    pub const XENOPROF: Virq = Virq(VIRQ_XENOPROF);
    /// [`VIRQ_CON_RING`]: global, console ring bytes.
    pub const CON_RING: Virq = Virq(VIRQ_CON_RING);
    /// [`VIRQ_PCPU_STATE`]: global, physical CPU state changed.
    pub const PCPU_STATE: Virq = Virq(VIRQ_PCPU_STATE);
    /// [`VIRQ_MEM_EVENT`]: global, memory event.
    pub const MEM_EVENT: Virq = Virq(VIRQ_MEM_EVENT);
    /// [`VIRQ_ARGO`]: per-domain Argo message.
    pub const ARGO: Virq = Virq(VIRQ_ARGO);
    /// [`VIRQ_ENOMEM`]: global, hypervisor heap low.
    pub const ENOMEM: Virq = Virq(VIRQ_ENOMEM);
    /// [`VIRQ_XENPMU`]: per-vCPU PMU interrupt.
    pub const XENPMU: Virq = Virq(VIRQ_XENPMU);

    /// True for a VIRQ each vCPU binds for itself (see [`virq_is_per_vcpu`]).
    #[must_use]
    pub const fn is_per_vcpu(self) -> bool {
        virq_is_per_vcpu(self.0)
    }
}

/// `EVTCHNOP_alloc_unbound` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate in (`DOMID_SELF` unless privileged).
    pub dom: DomId,
    /// IN: domain allowed to bind (may be `DOMID_SELF` for loopback).
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `EVTCHNOP_bind_interdomain` (12 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindInterdomain {
    /// IN: domain owning the unbound port.
    pub remote_dom: DomId,
    /// Padding.
    pub _pad: u16,
    /// IN: the unbound port in `remote_dom`, allocated for us.
    pub remote_port: EvtchnPort,
    /// OUT: the new local port (set pending on bind, in case the peer already signalled).
    pub local_port: EvtchnPort,
}

/// `EVTCHNOP_bind_virq` (12 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: Virq,
    /// IN: vCPU to notify (0 for global VIRQs).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `EVTCHNOP_bind_pirq` (12 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindPirq {
    /// IN: physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ_*`.
    pub flags: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `EVTCHNOP_bind_ipi` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindIpi {
    /// IN: vCPU to notify (fixed for the port's life).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `EVTCHNOP_close`, `EVTCHNOP_send` and `EVTCHNOP_unmask` all take just a port (4 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnPortOp {
    /// IN: local port.
    pub port: EvtchnPort,
}

/// `EVTCHNOP_close` argument.
pub type EvtchnClose = EvtchnPortOp;
/// `EVTCHNOP_send` argument.
pub type EvtchnSend = EvtchnPortOp;
/// `EVTCHNOP_unmask` argument.
pub type EvtchnUnmask = EvtchnPortOp;

/// `EVTCHNOP_status` (24 bytes). The union at offset 16 is kept raw; read it with
/// [`EvtchnStatus::detail`].
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnStatus {
    /// IN: domain (`DOMID_SELF` unless privileged).
    pub dom: DomId,
    /// Padding.
    pub _pad: u16,
    /// IN: port.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: status-dependent union (unbound: dom u16 @0; interdomain: dom u16 @0, port u32 @4;
    /// pirq: u32 @0; virq: u32 @0).
    pub u: [u32; 2],
}

/// The decoded union of [`EvtchnStatus`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EvtchnStatusDetail {
    /// Not in use.
    Closed,
    /// Waiting for `dom` to bind.
    Unbound {
        /// The domain allowed to bind.
        dom: DomId,
    },
    /// Connected to `port` of `dom`.
    Interdomain {
        /// Remote domain.
        dom: DomId,
        /// Remote port.
        port: EvtchnPort,
    },
    /// Bound to a physical IRQ.
    Pirq(u32),
    /// Bound to a VIRQ.
    Virq(u32),
    /// Bound to an IPI.
    Ipi,
    /// A status value we do not know.
    Unknown(u32),
}

impl EvtchnStatus {
    /// Decode `status` and the union.
    #[must_use]
    pub const fn detail(&self) -> EvtchnStatusDetail {
        let dom = DomId(self.u[0] as u16);
        match self.status {
            EVTCHNSTAT_CLOSED => EvtchnStatusDetail::Closed,
            EVTCHNSTAT_UNBOUND => EvtchnStatusDetail::Unbound { dom },
            EVTCHNSTAT_INTERDOMAIN => {
                EvtchnStatusDetail::Interdomain { dom, port: EvtchnPort(self.u[1]) }
            }
            EVTCHNSTAT_PIRQ => EvtchnStatusDetail::Pirq(self.u[0]),
            EVTCHNSTAT_VIRQ => EvtchnStatusDetail::Virq(self.u[0]),
            EVTCHNSTAT_IPI => EvtchnStatusDetail::Ipi,
            s => EvtchnStatusDetail::Unknown(s),
        }
    }

    /// Fill `status` and the union from a decoded value (the hypervisor's side).
    pub const fn set_detail(&mut self, d: EvtchnStatusDetail) {
        let (status, u) = match d {
            EvtchnStatusDetail::Closed => (EVTCHNSTAT_CLOSED, [0, 0]),
            EvtchnStatusDetail::Unbound { dom } => (EVTCHNSTAT_UNBOUND, [dom.0 as u32, 0]),
            EvtchnStatusDetail::Interdomain { dom, port } => {
                (EVTCHNSTAT_INTERDOMAIN, [dom.0 as u32, port.0])
            }
            EvtchnStatusDetail::Pirq(p) => (EVTCHNSTAT_PIRQ, [p, 0]),
            EvtchnStatusDetail::Virq(v) => (EVTCHNSTAT_VIRQ, [v, 0]),
            EvtchnStatusDetail::Ipi => (EVTCHNSTAT_IPI, [0, 0]),
            EvtchnStatusDetail::Unknown(s) => (s, [0, 0]),
        };
        self.status = status;
        self.u = u;
    }
}

/// `EVTCHNOP_bind_vcpu` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnBindVcpu {
    /// IN: port (not IPI or per-vCPU VIRQ, whose vCPU is fixed).
    pub port: EvtchnPort,
    /// IN: vCPU to notify from now on.
    pub vcpu: u32,
}

/// `EVTCHNOP_reset` (2 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct EvtchnReset {
    /// IN: domain (`DOMID_SELF` unless privileged).
    pub dom: DomId,
}

crate::assert_layout!(EvtchnAllocUnbound, size = 8, dom = 0, remote_dom = 2, port = 4);
crate::assert_layout!(
    EvtchnBindInterdomain,
    size = 12,
    remote_dom = 0,
    remote_port = 4,
    local_port = 8
);
crate::assert_layout!(EvtchnBindVirq, size = 12, virq = 0, vcpu = 4, port = 8);
crate::assert_layout!(EvtchnBindPirq, size = 12, pirq = 0, flags = 4, port = 8);
crate::assert_layout!(EvtchnBindIpi, size = 8, vcpu = 0, port = 4);
crate::assert_layout!(EvtchnPortOp, size = 4, port = 0);
crate::assert_layout!(EvtchnStatus, size = 24, dom = 0, port = 4, status = 8, vcpu = 12, u = 16);
crate::assert_layout!(EvtchnBindVcpu, size = 8, port = 0, vcpu = 4);
crate::assert_layout!(EvtchnReset, size = 2, dom = 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        let mut s = EvtchnStatus::default();
        for d in [
            EvtchnStatusDetail::Closed,
            EvtchnStatusDetail::Unbound { dom: DomId(3) },
            EvtchnStatusDetail::Interdomain { dom: DomId(0), port: EvtchnPort(9) },
            EvtchnStatusDetail::Pirq(17),
            EvtchnStatusDetail::Virq(VIRQ_TIMER),
            EvtchnStatusDetail::Ipi,
        ] {
            s.set_detail(d);
            assert_eq!(s.detail(), d);
        }
        s.status = 99;
        assert_eq!(s.detail(), EvtchnStatusDetail::Unknown(99));
    }

    #[test]
    fn interdomain_union_bytes() {
        let mut s = EvtchnStatus::default();
        s.set_detail(EvtchnStatusDetail::Interdomain { dom: DomId(0x102), port: EvtchnPort(7) });
        let b = s.as_bytes();
        assert_eq!(&b[16..18], &[0x02, 0x01]);
        assert_eq!(&b[20..24], &[7, 0, 0, 0]);
    }

    #[test]
    fn virq_classes() {
        assert!(virq_is_per_vcpu(VIRQ_TIMER));
        assert!(!virq_is_per_vcpu(VIRQ_CONSOLE));
        assert!(Virq::TIMER.is_per_vcpu());
        assert!(!Virq::DOM_EXC.is_per_vcpu());
        assert_eq!(Virq::XENPMU, Virq(VIRQ_XENPMU));
    }
}
