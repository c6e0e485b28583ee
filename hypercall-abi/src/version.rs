//! `xen_version` (hypercall 17): version, build strings and the feature bitmap, plus the
//! `XENFEAT_*` numbers (Xen's `features.h`) that also appear in the `FEATURES` ELF note.
//!
//! All sub-ops return 0 on success except `XENVER_version` (returns `major << 16 | minor`) and
//! `XENVER_pagesize` (returns the page size). The string sub-ops write fixed-size, NUL-padded
//! `char` arrays into the guest buffer.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Returns `major << 16 | minor`; arg NULL.
pub const XENVER_VERSION: u32 = 0;
/// Writes [`XenExtraversion`] (e.g. `".0"`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Writes [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Writes [`XenCapabilitiesInfo`] (space-separated, e.g. `"xen-3.0-x86_64 "`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// Writes [`XenChangesetInfo`].
pub const XENVER_CHANGESET: u32 = 4;
/// Writes [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// Reads/writes [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the page size; arg NULL.
pub const XENVER_PAGESIZE: u32 = 7;
/// Writes the 16-byte domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Writes [`XenCommandline`] (privileged).
pub const XENVER_COMMANDLINE: u32 = 9;
/// Writes the build id into a [`XenVarbuf`]-style buffer; returns its length.
pub const XENVER_BUILD_ID: u32 = 10;
/// Variable-length form of `extraversion`.
pub const XENVER_EXTRAVERSION2: u32 = 11;
/// Variable-length form of `capabilities`.
pub const XENVER_CAPABILITIES2: u32 = 12;
/// Variable-length form of `changeset`.
pub const XENVER_CHANGESET2: u32 = 13;
/// Variable-length form of `commandline`.
pub const XENVER_COMMANDLINE2: u32 = 14;

/// `XENVER_extraversion` buffer.
pub type XenExtraversion = [u8; 16];
/// `XENVER_capabilities` buffer.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `XENVER_changeset` buffer.
pub type XenChangesetInfo = [u8; 64];
/// `XENVER_commandline` buffer.
pub type XenCommandline = [u8; 1024];
/// `XENVER_guest_handle` buffer (`xen_domain_handle_t`).
pub type XenDomainHandle = [u8; 16];

/// Capability string a 64-bit PV guest looks for in `XENVER_capabilities`.
pub const CAPABILITY_PV64: &[u8] = b"xen-3.0-x86_64";

/// Pack a version as `XENVER_version` returns it.
#[must_use]
pub const fn version_encode(major: u16, minor: u16) -> u32 {
    ((major as u32) << 16) | minor as u32
}

/// Split a `XENVER_version` result into `(major, minor)`.
#[must_use]
pub const fn version_decode(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, v as u16)
}

/// `XENVER_compile_info` (144 bytes, hypervisor-written strings).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenCompileInfo {
    /// OUT: compiler.
    pub compiler: [u8; 64],
    /// OUT: builder user.
    pub compile_by: [u8; 16],
    /// OUT: builder domain.
    pub compile_domain: [u8; 32],
    /// OUT: build date.
    pub compile_date: [u8; 32],
}

/// `XENVER_platform_parameters` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenPlatformParameters {
    /// OUT: start of the hypervisor hole ([`crate::arch::HYPERVISOR_VIRT_START`]).
    pub virt_start: u64,
}

/// `XENVER_get_features` (8 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap (0 .. `XENFEAT_NR_SUBMAPS`).
    pub submap_idx: u32,
    /// OUT: the submap; bit `n` of submap `i` is feature `32 * i + n`.
    pub submap: u32,
}

/// Header of the variable-length buffers (`build_id`, `*2` sub-ops): `len` bytes follow.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct XenVarbuf {
    /// IN: size of the buffer after this header.
    pub len: u32,
}

crate::assert_layout!(
    XenCompileInfo,
    size = 144,
    compiler = 0,
    compile_by = 64,
    compile_domain = 80,
    compile_date = 112
);
crate::assert_layout!(XenPlatformParameters, size = 8, virt_start = 0);
crate::assert_layout!(XenFeatureInfo, size = 8, submap_idx = 0, submap = 4);
crate::assert_layout!(XenVarbuf, size = 4, len = 0);

/// Guest may write its page tables directly (emulated): the `writable_pagetables` assist.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Guest may write its descriptor tables directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Guest physical = pseudo-physical is translated by the hypervisor (HVM/PVH, not PV).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// The guest kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// x86_32 PAE: page directories above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `MMUEXT_CLEAR_PAGE` / `MMUEXT_COPY_PAGE` are supported.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Grant mappings may use the PTE available bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// HVM callback vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// pvclock is safe on HVM.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// HVM guests can use PIRQs.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Operating as dom0 is supported (kernel side) / this domain is dom0 (hypervisor side).
pub const XENFEAT_DOM0: u32 = 11;
/// Grant references are also mapped at pfn = mfn.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENMEMF_vnode` is supported.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// ARM SMCCC.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// Linux RSDP unrestricted.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// Domain is not direct mapped (ARM).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// Domain is direct mapped (ARM).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `VCPUOP_register_runstate_phys_area` is supported.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// `VCPUOP_register_vcpu_time_phys_area` is supported.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// Device model sees all MSI-X writes.
pub const XENFEAT_DM_MSIX_ALL_WRITES: u32 = 20;
/// Number of 32-bit submaps `XENVER_get_features` answers for.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// Feature names as used in the `FEATURES` ELF note (the `XENFEAT_` suffix, lower case).
pub const FEATURE_NAMES: &[(&str, u32)] = &[
    ("writable_page_tables", XENFEAT_WRITABLE_PAGE_TABLES),
    ("writable_descriptor_tables", XENFEAT_WRITABLE_DESCRIPTOR_TABLES),
    ("auto_translated_physmap", XENFEAT_AUTO_TRANSLATED_PHYSMAP),
    ("supervisor_mode_kernel", XENFEAT_SUPERVISOR_MODE_KERNEL),
    ("pae_pgdir_above_4gb", XENFEAT_PAE_PGDIR_ABOVE_4GB),
    ("mmu_pt_update_preserve_ad", XENFEAT_MMU_PT_UPDATE_PRESERVE_AD),
    ("highmem_assist", XENFEAT_HIGHMEM_ASSIST),
    ("gnttab_map_avail_bits", XENFEAT_GNTTAB_MAP_AVAIL_BITS),
    ("hvm_callback_vector", XENFEAT_HVM_CALLBACK_VECTOR),
    ("hvm_safe_pvclock", XENFEAT_HVM_SAFE_PVCLOCK),
    ("hvm_pirqs", XENFEAT_HVM_PIRQS),
    ("dom0", XENFEAT_DOM0),
    ("grant_map_identity", XENFEAT_GRANT_MAP_IDENTITY),
    ("memory_op_vnode_supported", XENFEAT_MEMORY_OP_VNODE_SUPPORTED),
    ("ARM_SMCCC_supported", XENFEAT_ARM_SMCCC_SUPPORTED),
    ("linux_rsdp_unrestricted", XENFEAT_LINUX_RSDP_UNRESTRICTED),
    ("not_direct_mapped", XENFEAT_NOT_DIRECT_MAPPED),
    ("direct_mapped", XENFEAT_DIRECT_MAPPED),
    ("runstate_phys_area", XENFEAT_RUNSTATE_PHYS_AREA),
    ("vcpu_time_phys_area", XENFEAT_VCPU_TIME_PHYS_AREA),
    ("dm_msix_all_writes", XENFEAT_DM_MSIX_ALL_WRITES),
];

/// The `XENFEAT_*` number for a feature name.
#[must_use]
pub fn feature_by_name(name: &[u8]) -> Option<u32> {
    FEATURE_NAMES.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_packing() {
        assert_eq!(version_encode(4, 17), 0x0004_0011);
        assert_eq!(version_decode(0x0004_0011), (4, 17));
    }

    #[test]
    fn feature_names() {
        assert_eq!(feature_by_name(b"dom0"), Some(11));
        assert_eq!(feature_by_name(b"writable_page_tables"), Some(0));
        assert_eq!(feature_by_name(b"nope"), None);
        for (i, (_, v)) in FEATURE_NAMES.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
    }
}
