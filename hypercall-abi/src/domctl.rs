//! `domctl` (hypercall 36): domain management for the privileged domain's toolstack. Xen
//! treats domctl as a tools interface whose version changes with every release, not as guest
//! ABI; we keep Xen 4.17's envelope, numbers and layouts (interface version 0x15) for the
//! operations we implement. Only a privileged domain may call it.
//!
//! What a domain builder in dom0 uses, in order (as Xen's libxenguest): `createdomain` (with
//! its name in `handle`), `max_vcpus`, `max_mem`, `memory_op(populate_physmap)` on the new
//! domain's behalf, foreign `mmu_update`s to write its image, `mmuext_op(pin L4)` with the
//! domain as `foreigndom`, grant-table and event-channel ops on its behalf, `setvcpucontext`
//! (CR3 = the pinned L4), then `unpausedomain`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::types::DomId;

/// The interface version this hypervisor speaks (what dom0 must put in every request).
pub const INTERFACE_VERSION: u32 = 0x0000_0015;

/// Create an empty domain (`domain` 0: the hypervisor picks the id and returns it).
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// Destroy a domain (its memory returns once nothing else maps it).
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// Stop a domain's vCPUs from running.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// Let a paused domain run again.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// Describe the first domain with id >= `domain` ([`GetDomainInfo`]).
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// Set a domain's memory ceiling ([`MaxMem`]).
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// Set a vCPU's register state ([`VcpuContextOp`] naming a `VcpuGuestContext`).
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// Read a vCPU's register state ([`VcpuContextOp`]).
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// Bring the vCPUs `createdomain` promised into being ([`MaxVcpus`]).
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// Get or set scheduling parameters ([`SchedulerOp`]).
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;

// ---- XEN_DOMCTL_CDF_* flags of CreateDomain::flags ----

/// An HVM guest (refused: PV only).
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// Hardware-assisted paging (refused: PV only).
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;

// ---- XEN_DOMINF_* flags of GetDomainInfo::flags ----

/// Being destroyed.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// Shut down (reason in the high bits).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// Paused by the toolstack.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// Every vCPU is blocked.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// Some vCPU is runnable.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// The guest's shutdown reason sits in bits 16-23 when SHUTDOWN is set.
pub const XEN_DOMINF_SHUTDOWN_SHIFT: u32 = 16;

// ---- Scheduler ids (SchedulerOp::sched_id) and scheduler commands ----

/// The credit scheduler.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// Set parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// Get parameters.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;

/// The domctl envelope (144 bytes): command, version, target domain, then a 128-byte union.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Domctl {
    /// IN: `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// IN: [`INTERFACE_VERSION`].
    pub interface_version: u32,
    /// IN (OUT for getdomaininfo: the domain found).
    pub domain: DomId,
    /// Padding.
    pub _pad: [u16; 3],
    /// IN/OUT: the operation's struct.
    pub u: [u8; 128],
}

/// `XEN_DOMCTL_createdomain` (in [`Domctl::u`]): what the new domain may have. Its memory
/// comes later (`max_mem`, then `populate_physmap` on its behalf).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct CreateDomain {
    /// IN: security label (unused).
    pub ssidref: u32,
    /// IN: Xen's toolstack handle (a UUID). xen-core takes the domain's name from it,
    /// NUL-padded (see [`GetDomainInfo::handle`]).
    pub handle: [u8; 16],
    /// IN: `XEN_DOMCTL_CDF_*` (none of them: a PV domain).
    pub flags: u32,
    /// IN: IOMMU options (none).
    pub iommu_opts: u32,
    /// IN: how many vCPUs it may have (xen-core runs one per domain).
    pub max_vcpus: u32,
    /// IN: highest event-channel port (0: the hypervisor's default).
    pub max_evtchn_port: u32,
    /// IN: grant-table frames (< 0: the hypervisor's default).
    pub max_grant_frames: i32,
    /// IN: maptrack frames (< 0: the hypervisor's default).
    pub max_maptrack_frames: i32,
    /// IN: grant-table version in the low 4 bits (0 or 1 here).
    pub grant_opts: u32,
    /// IN: per-vCPU trace buffer (0: none).
    pub vmtrace_size: u32,
    /// IN: CPU pool (0).
    pub cpupool_id: u32,
    /// IN: x86's `xen_arch_domainconfig`: emulation flags (0 for PV).
    pub arch_emulation_flags: u32,
    /// IN: x86's `xen_arch_domainconfig`: misc flags (relaxed MSR access; ignored for PV).
    pub arch_misc_flags: u32,
}

/// `XEN_DOMCTL_max_vcpus`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MaxVcpus {
    /// IN: the domain's vCPU count (must equal `createdomain`'s `max_vcpus`).
    pub max: u32,
}

/// `XEN_DOMCTL_setvcpucontext` / `getvcpucontext`: vCPU `vcpu`'s state, in a
/// `vcpu::VcpuGuestContext` at `ctxt` in the caller's memory.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuContextOp {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: guest handle of the context (read for set, written for get).
    pub ctxt: u64,
}

/// `XEN_DOMCTL_getdomaininfo` (in [`Domctl::u`]): the first domain with id >= `domain`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GetDomainInfo {
    /// OUT: the domain described.
    pub domain: DomId,
    /// Padding.
    pub _pad: u16,
    /// OUT: `XEN_DOMINF_*`.
    pub flags: u32,
    /// OUT: frames it owns.
    pub tot_pages: u64,
    /// OUT: its ceiling.
    pub max_pages: u64,
    /// OUT: frames promised but not allocated (always 0 here).
    pub outstanding_pages: u64,
    /// OUT: shared frames (always 0 here).
    pub shr_pages: u64,
    /// OUT: paged-out frames (always 0 here).
    pub paged_pages: u64,
    /// OUT: machine frame of the domain's shared_info.
    pub shared_info_frame: u64,
    /// OUT: CPU time consumed by all its vCPUs (ns).
    pub cpu_time: u64,
    /// OUT: vCPUs up.
    pub nr_online_vcpus: u32,
    /// OUT: highest vCPU id.
    pub max_vcpu_id: u32,
    /// OUT: security label (unused).
    pub ssidref: u32,
    /// OUT: Xen's toolstack handle (a UUID). xen-core puts the domain's name here,
    /// NUL-padded: its domains have no UUIDs, and dom0 names console lines after it.
    pub handle: [u8; 16],
    /// OUT: CPU pool (always 0).
    pub cpupool: u32,
    /// OUT: x86's `xen_arch_domainconfig` (emulation flags, misc flags: 0 for PV).
    pub arch_config: [u32; 2],
}

/// `XEN_DOMCTL_max_mem`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MaxMem {
    /// IN: new ceiling in KiB.
    pub max_memkb: u64,
}

/// `XEN_DOMCTL_scheduler_op` for the credit scheduler.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SchedulerOp {
    /// IN: [`XEN_SCHEDULER_CREDIT`].
    pub sched_id: u32,
    /// IN: `XEN_DOMCTL_SCHEDOP_putinfo` / `getinfo`.
    pub cmd: u32,
    /// IN/OUT: relative weight (default 256).
    pub weight: u16,
    /// IN/OUT: cap in percent of one CPU (0 = none).
    pub cap: u16,
    /// Padding.
    pub _pad: u32,
}

crate::assert_layout!(Domctl, size = 144, cmd = 0, interface_version = 4, domain = 8, u = 16);
crate::assert_layout!(
    CreateDomain,
    size = 64,
    ssidref = 0,
    handle = 4,
    flags = 20,
    iommu_opts = 24,
    max_vcpus = 28,
    max_evtchn_port = 32,
    max_grant_frames = 36,
    max_maptrack_frames = 40,
    grant_opts = 44,
    vmtrace_size = 48,
    cpupool_id = 52,
    arch_emulation_flags = 56,
    arch_misc_flags = 60
);
crate::assert_layout!(MaxVcpus, size = 4, max = 0);
crate::assert_layout!(VcpuContextOp, size = 16, vcpu = 0, ctxt = 8);
crate::assert_layout!(
    GetDomainInfo,
    size = 104,
    flags = 4,
    tot_pages = 8,
    max_pages = 16,
    shared_info_frame = 48,
    cpu_time = 56,
    nr_online_vcpus = 64,
    max_vcpu_id = 68,
    handle = 76,
    cpupool = 92,
    arch_config = 96
);
crate::assert_layout!(MaxMem, size = 8, max_memkb = 0);
crate::assert_layout!(SchedulerOp, size = 16, sched_id = 0, cmd = 4, weight = 8, cap = 10);

/// Writes `op` at the start of a domctl/sysctl union and zeroes the rest. An op larger than
/// the union does not compile.
pub(crate) fn put_union<T: IntoBytes + Immutable>(u: &mut [u8; 128], op: &T) {
    const { assert!(core::mem::size_of::<T>() <= 128, "the op does not fit the union") };
    *u = [0; 128];
    u[..core::mem::size_of::<T>()].copy_from_slice(op.as_bytes());
}

/// Reads a domctl/sysctl union as `T`.
pub(crate) fn get_union<T: FromBytes>(u: &[u8; 128]) -> T {
    T::read_from_prefix(u).map(|(t, _)| t).unwrap_or_else(|_| T::new_zeroed())
}

impl Domctl {
    /// An envelope for `cmd` on `domain` carrying `op`.
    #[must_use]
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, domain: DomId, op: &T) -> Self {
        let mut d =
            Domctl { cmd, interface_version: INTERFACE_VERSION, domain, _pad: [0; 3], u: [0; 128] };
        d.set_op(op);
        d
    }

    /// The union read as `T`.
    #[must_use]
    pub fn op<T: FromBytes>(&self) -> T {
        get_union(&self.u)
    }

    /// Replaces the union with `op` (the rest zeroed): how a reply is written.
    pub fn set_op<T: IntoBytes + Immutable>(&mut self, op: &T) {
        put_union(&mut self.u, op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip() {
        let op =
            SchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd: 0, weight: 512, cap: 50, _pad: 0 };
        let d = Domctl::new(XEN_DOMCTL_SCHEDULER_OP, DomId(3), &op);
        assert_eq!(d.op::<SchedulerOp>(), op);
        assert_eq!(d.interface_version, INTERFACE_VERSION);
    }
}
