//! `sysctl` (hypercall 35): machine-wide information for the privileged domain's toolstack.
//! Like domctl a tools interface; we keep Xen's envelope and implement `physinfo`, plus two
//! operations of xen-core's own (numbered far from Xen's, which end below 40) through which
//! dom0's toolstack builds the domUs the hypervisor's command line names (`domu=`): Xen on
//! x86 has no boot-time domUs, so it has no such operation.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The interface version this hypervisor speaks.
pub const INTERFACE_VERSION: u32 = 0x0000_0015;
/// `XEN_SYSCTL_readconsole`: read (and optionally clear) the hypervisor's log ring.
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;

/// xen-core's own: the `index`-th domU of the hypervisor's command line ([`BootDomu`]);
/// `-ESRCH` past the last.
pub const XEN_SYSCTL_BOOT_DOMU: u32 = 0x7C00;
/// xen-core's own: bytes and arguments of a boot module a `domu=` names ([`BootModule`]).
pub const XEN_SYSCTL_BOOT_MODULE: u32 = 0x7C01;
/// The most one [`XEN_SYSCTL_BOOT_MODULE`] copies (the caller loops for more).
pub const BOOT_MODULE_CHUNK: u64 = 1 << 20;
/// [`BootDomu::ramdisk_module`] when it has none.
pub const BOOT_MODULE_NONE: u32 = u32::MAX;

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

/// `XEN_SYSCTL_readconsole` (in [`Sysctl::u`]): copies the hypervisor's log ring from the
/// oldest byte kept (or from `index` if `incremental`) into `buffer`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Readconsole {
    /// IN: non-zero: the ring is cleared after this read (later reads start after it).
    pub clear: u8,
    /// IN: non-zero: start at `index` (a position a previous read returned).
    pub incremental: u8,
    /// Padding.
    pub _pad: [u8; 2],
    /// IN: where to start if `incremental`; OUT: the position after the last byte copied.
    pub index: u32,
    /// IN: guest handle of the destination.
    pub buffer: u64,
    /// IN: the buffer's size; OUT: bytes copied.
    pub count: u32,
    /// Padding.
    pub _pad2: u32,
}

/// [`XEN_SYSCTL_BOOT_DOMU`]: `domu=<name>:<module>[:<mem>[:<weight>[:<cap>]]]` and its
/// `domu_ramdisk=`, as the hypervisor parsed them.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BootDomu {
    /// IN: which one (from 0, in command-line order).
    pub index: u32,
    /// OUT: the module holding its kernel (its arguments are the domain's command line).
    pub kernel_module: u32,
    /// OUT: the module holding its ramdisk, or [`BOOT_MODULE_NONE`].
    pub ramdisk_module: u32,
    /// OUT: credit-scheduler weight.
    pub weight: u32,
    /// OUT: credit-scheduler cap (percent of a CPU, 0 = none).
    pub cap: u32,
    /// Padding.
    pub _pad: u32,
    /// OUT: memory in bytes.
    pub mem_bytes: u64,
    /// OUT: its name, NUL-padded.
    pub name: [u8; 64],
}

impl Default for BootDomu {
    fn default() -> Self {
        <Self as zerocopy::FromZeros>::new_zeroed()
    }
}

/// [`XEN_SYSCTL_BOOT_MODULE`]: copies up to `len` bytes of module `index` from `offset` to
/// `buffer`, and its arguments (what follows its name on the boot loader's line) to
/// `cmdline`. Only modules a `domu=` names are given out.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BootModule {
    /// IN: module number (0 is dom0's kernel, never given).
    pub index: u32,
    /// Padding.
    pub _pad: u32,
    /// OUT: the module's size in bytes.
    pub size: u64,
    /// IN: where to read from.
    pub offset: u64,
    /// IN: guest handle of the destination (0: sizes only).
    pub buffer: u64,
    /// IN: bytes wanted (at most [`BOOT_MODULE_CHUNK`] are copied); OUT: bytes copied.
    pub len: u64,
    /// IN: guest handle for the module's arguments (0: not wanted).
    pub cmdline: u64,
    /// IN: that buffer's size; OUT: the arguments' length (copied if it fits).
    pub cmdline_len: u64,
}

crate::assert_layout!(
    BootDomu,
    size = 96,
    index = 0,
    kernel_module = 4,
    ramdisk_module = 8,
    weight = 12,
    cap = 16,
    mem_bytes = 24,
    name = 32
);
crate::assert_layout!(
    BootModule,
    size = 56,
    index = 0,
    size = 8,
    offset = 16,
    buffer = 24,
    len = 32,
    cmdline = 40,
    cmdline_len = 48
);
crate::assert_layout!(
    Readconsole,
    size = 24,
    clear = 0,
    incremental = 1,
    index = 4,
    buffer = 8,
    count = 16
);
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
