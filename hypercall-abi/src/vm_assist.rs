//! `vm_assist` (hypercall 21): opt in to hypervisor help that changes how some guest actions
//! are interpreted. `VMASST_TYPE_writable_pagetables` is the one a modern PV kernel enables: its
//! writes to its own (read-only mapped) page tables trap and are emulated as `mmu_update`.

/// Turn an assist on.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// Turn an assist off.
pub const VMASST_CMD_DISABLE: u32 = 1;

/// x86_32 only: 4 GiB flat segments.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// x86_32 only: notify on 4 GiB segment emulation.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Emulate guest writes to its page tables (trap-and-emulate `mmu_update`).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// x86_32 PAE: L3 tables above 4 GiB.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// IOPL from `PHYSDEVOP_set_iopl` is applied architecturally (as the guest's virtual IOPL).
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Set `XEN_RUNSTATE_UPDATE` in `state_entry_time` while updating the runstate area.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Hide M2P entries for frames the guest does not own.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

/// Bitmap of the assists a 64-bit PV guest may enable (Xen's `VM_ASSIST_VALID` for PV64).
pub const VMASST_VALID_PV64: u64 = (1 << VMASST_TYPE_4GB_SEGMENTS)
    | (1 << VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << VMASST_TYPE_M2P_STRICT);
