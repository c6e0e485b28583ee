//! Hypercall numbers (`__HYPERVISOR_*` in Xen's `xen.h`) and a small table of names and
//! argument counts, so the hypervisor's dispatcher, its logs and these docs agree.
//!
//! A hypercall is made with `rax` = number and up to five arguments in `rdi, rsi, rdx, r10, r8`;
//! the result comes back in `rax` (negative errno on failure). Guests do not issue `syscall`
//! with these numbers themselves: they `call` stub `nr` in the hypercall page
//! (see [`crate::hypercall_page`](mod@crate::hypercall_page)).

/// Not Xen's: xen-core started with `floor_probe` returns at once from a `syscall` with this
/// `rax`, so a benchmark can measure the bare syscall/sysret transition.
pub const XEN_CORE_FLOOR_PROBE: i64 = -42;

/// Install the virtual IDT: a [`crate::arch::TrapInfo`] array ended by a zero `address`.
pub const SET_TRAP_TABLE: u64 = 0;
/// Validated page-table writes: `(reqs, count, done*, foreigndom)`.
pub const MMU_UPDATE: u64 = 1;
/// Install a guest GDT: `(frame_list, entries)`.
pub const SET_GDT: u64 = 2;
/// Set the kernel stack used when entering guest-kernel mode: `(ss, rsp)`.
pub const STACK_SWITCH: u64 = 3;
/// Register event, failsafe and syscall callbacks: `(event, failsafe, syscall)`.
pub const SET_CALLBACKS: u64 = 4;
/// Set (1) or clear (0) the virtual CR0.TS.
pub const FPU_TASKSWITCH: u64 = 5;
/// Pre-3.0.2 scheduler op `(cmd, arg)`; superseded by [`SCHED_OP`].
pub const SCHED_OP_COMPAT: u64 = 6;
/// Platform (dom0 only) operations; was `dom0_op`.
pub const PLATFORM_OP: u64 = 7;
/// Set a debug register: `(reg, value)`.
pub const SET_DEBUGREG: u64 = 8;
/// Read a debug register: `(reg)`.
pub const GET_DEBUGREG: u64 = 9;
/// Write one GDT/LDT descriptor: `(machine address, descriptor)`.
pub const UPDATE_DESCRIPTOR: u64 = 10;
/// Memory reservation and physmap operations: `(cmd, arg)`.
pub const MEMORY_OP: u64 = 12;
/// Batch of hypercalls: `(entries, count)`.
pub const MULTICALL: u64 = 13;
/// Write one L1 entry mapping a virtual address: `(va, pte, flags)`.
pub const UPDATE_VA_MAPPING: u64 = 14;
/// One-shot timer at an absolute system time in ns (0 cancels).
pub const SET_TIMER_OP: u64 = 15;
/// Pre-3.0.2 event-channel op (one struct with the cmd inside).
pub const EVENT_CHANNEL_OP_COMPAT: u64 = 16;
/// Version and feature queries: `(cmd, arg)`.
pub const XEN_VERSION: u64 = 17;
/// Hypervisor console: `(cmd, count, buffer)`.
pub const CONSOLE_IO: u64 = 18;
/// Pre-3.0.2 physdev op (one struct with the cmd inside).
pub const PHYSDEV_OP_COMPAT: u64 = 19;
/// Grant-table operations: `(cmd, ops, count)`.
pub const GRANT_TABLE_OP: u64 = 20;
/// Enable/disable a VM assist: `(cmd, type)`.
pub const VM_ASSIST: u64 = 21;
/// [`UPDATE_VA_MAPPING`] in another domain's address space: `(va, pte, flags, domid)`.
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
/// Return from an exception/event frame; jumped to, never called. See [`crate::arch::IretContext`].
pub const IRET: u64 = 23;
/// Per-vCPU operations: `(cmd, vcpu, arg)`.
pub const VCPU_OP: u64 = 24;
/// Set FS / GS bases (x86_64 only): `(which, base)`.
pub const SET_SEGMENT_BASE: u64 = 25;
/// Extended MMU operations (pin, baseptr, TLB flush): `(ops, count, done*, foreigndom)`.
pub const MMUEXT_OP: u64 = 26;
/// XSM / FLASK security operations.
pub const XSM_OP: u64 = 27;
/// NMI callback registration: `(cmd, arg)`.
pub const NMI_OP: u64 = 28;
/// Scheduler operations: `(cmd, arg)`.
pub const SCHED_OP: u64 = 29;
/// Callback registration: `(cmd, arg)`.
pub const CALLBACK_OP: u64 = 30;
/// Profiling (dropped in Xen 4.22).
pub const XENOPROF_OP: u64 = 31;
/// Event-channel operations: `(cmd, arg)`.
pub const EVENT_CHANNEL_OP: u64 = 32;
/// Physical device operations: `(cmd, arg)`.
pub const PHYSDEV_OP: u64 = 33;
/// HVM operations.
pub const HVM_OP: u64 = 34;
/// System control (toolstack, dom0 only).
pub const SYSCTL: u64 = 35;
/// Domain control (toolstack, dom0 only).
pub const DOMCTL: u64 = 36;
/// kexec.
pub const KEXEC_OP: u64 = 37;
/// Transcendent memory (removed).
pub const TMEM_OP: u64 = 38;
/// Argo inter-domain messaging.
pub const ARGO_OP: u64 = 39;
/// PMU virtualization.
pub const XENPMU_OP: u64 = 40;
/// Device-model operations.
pub const DM_OP: u64 = 41;
/// Hypervisor filesystem.
pub const HYPFS_OP: u64 = 42;
/// First architecture-specific hypercall (x86: machine check `mca`).
pub const ARCH_0: u64 = 48;
/// Last architecture-specific hypercall number.
pub const ARCH_7: u64 = 55;

/// Number of 32-byte stubs in the hypercall page (4096 / 32).
pub const HYPERCALL_PAGE_STUBS: u64 = 128;
/// Bytes per stub; stub `n` lives at `hypercall_page + n * STUB_SIZE`.
pub const STUB_SIZE: u64 = 32;

/// Name, number and argument count of one hypercall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HypercallInfo {
    /// The hypercall number.
    pub nr: u64,
    /// Xen's name, without the `__HYPERVISOR_` prefix.
    pub name: &'static str,
    /// Number of register arguments the x86_64 PV ABI passes (0..=5).
    pub nargs: u8,
}

const fn hc(nr: u64, name: &'static str, nargs: u8) -> HypercallInfo {
    HypercallInfo { nr, name, nargs }
}

/// Every hypercall number Xen defines, in numeric order. The argument counts are the x86_64
/// PV signatures (Xen's `hypercall-defs.c`); a multicall entry carries the same arguments.
pub const TABLE: &[HypercallInfo] = &[
    hc(SET_TRAP_TABLE, "set_trap_table", 1),
    hc(MMU_UPDATE, "mmu_update", 4),
    hc(SET_GDT, "set_gdt", 2),
    hc(STACK_SWITCH, "stack_switch", 2),
    hc(SET_CALLBACKS, "set_callbacks", 3),
    hc(FPU_TASKSWITCH, "fpu_taskswitch", 1),
    hc(SCHED_OP_COMPAT, "sched_op_compat", 2),
    hc(PLATFORM_OP, "platform_op", 1),
    hc(SET_DEBUGREG, "set_debugreg", 2),
    hc(GET_DEBUGREG, "get_debugreg", 1),
    hc(UPDATE_DESCRIPTOR, "update_descriptor", 2),
    hc(MEMORY_OP, "memory_op", 2),
    hc(MULTICALL, "multicall", 2),
    hc(UPDATE_VA_MAPPING, "update_va_mapping", 3),
    hc(SET_TIMER_OP, "set_timer_op", 1),
    hc(EVENT_CHANNEL_OP_COMPAT, "event_channel_op_compat", 1),
    hc(XEN_VERSION, "xen_version", 2),
    hc(CONSOLE_IO, "console_io", 3),
    hc(PHYSDEV_OP_COMPAT, "physdev_op_compat", 1),
    hc(GRANT_TABLE_OP, "grant_table_op", 3),
    hc(VM_ASSIST, "vm_assist", 2),
    hc(UPDATE_VA_MAPPING_OTHERDOMAIN, "update_va_mapping_otherdomain", 4),
    hc(IRET, "iret", 0),
    hc(VCPU_OP, "vcpu_op", 3),
    hc(SET_SEGMENT_BASE, "set_segment_base", 2),
    hc(MMUEXT_OP, "mmuext_op", 4),
    hc(XSM_OP, "xsm_op", 1),
    hc(NMI_OP, "nmi_op", 2),
    hc(SCHED_OP, "sched_op", 2),
    hc(CALLBACK_OP, "callback_op", 2),
    hc(XENOPROF_OP, "xenoprof_op", 2),
    hc(EVENT_CHANNEL_OP, "event_channel_op", 2),
    hc(PHYSDEV_OP, "physdev_op", 2),
    hc(HVM_OP, "hvm_op", 2),
    hc(SYSCTL, "sysctl", 1),
    hc(DOMCTL, "domctl", 1),
    hc(KEXEC_OP, "kexec_op", 2),
    hc(TMEM_OP, "tmem_op", 1),
    hc(ARGO_OP, "argo_op", 5),
    hc(XENPMU_OP, "xenpmu_op", 2),
    hc(DM_OP, "dm_op", 3),
    hc(HYPFS_OP, "hypfs_op", 5),
    hc(ARCH_0, "arch_0", 1),
    hc(49, "arch_1", 5),
    hc(50, "arch_2", 5),
    hc(51, "arch_3", 5),
    hc(52, "arch_4", 5),
    hc(53, "arch_5", 5),
    hc(54, "arch_6", 5),
    hc(ARCH_7, "arch_7", 5),
];

/// Table entry for `nr`, if Xen defines that number.
#[must_use]
pub fn info(nr: u64) -> Option<&'static HypercallInfo> {
    TABLE.iter().find(|h| h.nr == nr)
}

/// Xen's name for hypercall `nr` (e.g. `"sched_op"`), for logs.
#[must_use]
pub fn name(nr: u64) -> Option<&'static str> {
    info(nr).map(|h| h.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sorted_and_unique() {
        for w in TABLE.windows(2) {
            assert!(w[0].nr < w[1].nr, "{} !< {}", w[0].name, w[1].name);
        }
        assert!(TABLE.iter().all(|h| h.nr < HYPERCALL_PAGE_STUBS && h.nargs <= 5));
    }

    #[test]
    fn names() {
        assert_eq!(name(SET_TRAP_TABLE), Some("set_trap_table"));
        assert_eq!(name(IRET), Some("iret"));
        assert_eq!(name(EVENT_CHANNEL_OP), Some("event_channel_op"));
        assert_eq!(name(DOMCTL), Some("domctl"));
        assert_eq!(name(11), None);
        assert_eq!(name(1000), None);
        assert_eq!(info(MMU_UPDATE).map(|h| h.nargs), Some(4));
        assert_eq!(HYPERCALL_PAGE_STUBS * STUB_SIZE, crate::PAGE_SIZE);
    }
}
