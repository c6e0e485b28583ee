//! `sysctl` (hypercall 35): machine-wide information for the privileged domain's toolstack.
//! Like domctl a tools interface; we keep Xen's envelope and implement `physinfo`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The interface version this hypervisor speaks.
pub const INTERFACE_VERSION: u32 = 0x0000_0015;
/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;

/// The sysctl envelope (136 bytes): command, version, then a 128-byte union.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Sysctl {
    /// IN: `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// IN: [`INTERFACE_VERSION`].
    pub interface_version: u32,
    /// IN/OUT: the operation's struct.
    pub u: [u8; 128],
}

/// `XEN_SYSCTL_physinfo` (in [`Sysctl::u`]): the machine's CPUs and memory.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Physinfo {
    /// OUT: threads per core.
    pub threads_per_core: u32,
    /// OUT: cores per socket.
    pub cores_per_socket: u32,
    /// OUT: CPUs online.
    pub nr_cpus: u32,
    /// OUT: highest CPU id.
    pub max_cpu_id: u32,
    /// OUT: NUMA nodes.
    pub nr_nodes: u32,
    /// OUT: highest node id.
    pub max_node_id: u32,
    /// OUT: CPU (TSC) frequency in kHz.
    pub cpu_khz: u32,
    /// OUT: capability flags (none defined here).
    pub capabilities: u32,
    /// OUT: architecture-specific capability flags (none here).
    pub arch_capabilities: u32,
    /// Padding.
    pub _pad: u32,
    /// OUT: RAM frames the hypervisor manages.
    pub total_pages: u64,
    /// OUT: frames on the free list.
    pub free_pages: u64,
    /// OUT: frames waiting to be scrubbed.
    pub scrub_pages: u64,
    /// OUT: frames promised but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: highest machine frame number.
    pub max_mfn: u64,
    /// OUT: CPU feature words.
    pub hw_cap: [u32; 8],
}

crate::assert_layout!(Sysctl, size = 136, cmd = 0, interface_version = 4, u = 8);
// Xen's layout at interface version 0x15 (arch_capabilities and its pad arrived with it).
crate::assert_layout!(
    Physinfo,
    size = 112,
    cpu_khz = 24,
    capabilities = 28,
    arch_capabilities = 32,
    total_pages = 40,
    free_pages = 48,
    scrub_pages = 56,
    outstanding_pages = 64,
    max_mfn = 72,
    hw_cap = 80
);

impl Sysctl {
    /// An envelope for `cmd`.
    #[must_use]
    pub fn new(cmd: u32) -> Self {
        Sysctl { cmd, interface_version: INTERFACE_VERSION, u: [0; 128] }
    }

    /// The union read as `T`.
    #[must_use]
    pub fn op<T: FromBytes>(&self) -> T {
        crate::domctl::get_union(&self.u)
    }

    /// Replaces the union with `op` (the rest zeroed): how a reply is written.
    pub fn set_op<T: IntoBytes + Immutable>(&mut self, op: &T) {
        crate::domctl::put_union(&mut self.u, op);
    }
}
