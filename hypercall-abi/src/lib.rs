//! # hypercall-abi: Xen's x86_64 PV guest ABI in Rust
//!
//! This crate is the single Rust definition of the interface between our hypervisor and the
//! paravirtualized kernels above it. It is Xen's x86_64 PV ABI: the same hypercall numbers,
//! calling convention, `start_info` / `shared_info` layouts, event channels, grant tables,
//! XenStore wire format and split-driver rings. Three kinds of users read it:
//!
//! - the hypervisor (`xen-core`), to decode what guests pass it;
//! - our guest kernels (`pv-guest`, `dom0`), through the typed wrappers of feature `guest`;
//! - anyone porting a kernel: these docs are the porting guide.
//!
//! Everything is plain data: `#[repr(C)]` structs of fixed-width integers with zerocopy
//! derives, padding spelled out as `_pad*` fields, and a compile-time check of each size and
//! key offset against Xen's public headers. Each field says who writes it (IN = the caller
//! fills it, OUT = the hypervisor fills it). Only `guest::raw` contains `unsafe` code.
//!
//! ## Porting guide
//!
//! ### 1. The image: ELF notes
//!
//! A PV kernel is an ELF64 executable with a `PT_NOTE` segment (or `SHT_NOTE` section) of notes
//! owned by `"Xen"` ([`elfnote`]). The builder needs at least:
//!
//! | note | value |
//! |---|---|
//! | `XEN_ELFNOTE_ENTRY` (1) | virtual address of the entry point |
//! | `XEN_ELFNOTE_HYPERCALL_PAGE` (2) | virtual address of the `hypercall_page` symbol |
//! | `XEN_ELFNOTE_VIRT_BASE` (3) | virtual address pfn 0 is mapped at |
//! | `XEN_ELFNOTE_PADDR_OFFSET` (4) | usually equal to `VIRT_BASE` when `p_paddr` holds VAs |
//! | `XEN_ELFNOTE_XEN_VERSION` (5) | `"xen-3.0"` |
//! | `XEN_ELFNOTE_GUEST_OS` (6) | any name |
//! | `XEN_ELFNOTE_LOADER` (8) | `"generic"` |
//! | `XEN_ELFNOTE_FEATURES` (10) | e.g. `"!writable_page_tables"` (`!` = required) |
//!
//! The kernel is loaded at `p_paddr + (VIRT_BASE - PADDR_OFFSET)`.
//!
//! ### 2. Entry state
//!
//! The builder maps, 1:1 from pfn 0 at `VIRT_BASE` and each part page aligned: the kernel, the
//! ramdisk, the P2M list (one `u64` MFN per pfn), [`start_info::StartInfo`], the XenStore page,
//! the console page, the bootstrap page tables (mapped read-only), one boot-stack page, then at
//! least 512 KiB of slack; the region is rounded up to 4 MiB. The kernel starts with:
//!
//! - `rip` = the `ENTRY` note, `rsp` = top of the boot stack, **`rsi` = virtual address of
//!   `start_info`**, `rflags` = 0x200, all other general registers 0;
//! - `cs` = [`arch::FLAT_KERNEL_CS`] (0xe033), `ss` = [`arch::FLAT_KERNEL_SS`] (0xe02b),
//!   `ds`/`es`/`fs`/`gs` = 0; the kernel runs in **ring 3**, like its user space;
//! - `cr3` = the bootstrap L4 (`start_info.pt_base`);
//! - events masked: every `vcpu_info.evtchn_upcall_mask` is 1 in a zeroed `shared_info`,
//!   whose *machine* address is `start_info.shared_info` (map it with `update_va_mapping`).
//!
//! ### 3. Making hypercalls
//!
//! The kernel defines a 4096-byte, page-aligned symbol named `hypercall_page` in an
//! executable section and points the `HYPERCALL_PAGE` note at it. Before entry the hypervisor
//! fills it with 128 stubs of 32 bytes ([`hypercall_page`]); hypercall `n` is
//! `call hypercall_page + n * 32` with arguments in `rdi, rsi, rdx, r10, r8` and the result in
//! `rax` (negative [`Errno`] on failure). The stubs preserve every register but `rax`; treat
//! the argument registers as clobbered too. With feature `guest`, `guest::raw` does this and
//! the functions in `guest` wrap each hypercall with types. Numbers are in [`nr`].
//!
//! Early boot should: install a trap table (`set_trap_table`), register the event and
//! failsafe callbacks (`set_callbacks` or `callback_op`), enable
//! `VMASST_TYPE_writable_pagetables` if wanted ([`vm_assist`]), map `shared_info`, then unmask
//! events by clearing `evtchn_upcall_mask`.
//!
//! ### 4. Exceptions and events: the bounce frame
//!
//! The hypervisor delivers an exception, or an event upcall when
//! `evtchn_upcall_pending == 1 && evtchn_upcall_mask == 0`, by building a frame on the guest
//! kernel stack (the current rsp in kernel mode, else the stack given to `stack_switch`, aligned
//! down to 16), lowest address first:
//!
//! ```text
//! rcx, r11, [error code], rip, cs, rflags, rsp, ss
//! ```
//!
//! The `cs` slot carries the saved upcall mask in bits 32..40; `rflags.IF` is `!saved mask`.
//! Events (and traps registered with [`arch::TI_MASK_EVENTS`]) then set the mask. The handler
//! runs at `cs:rip` = 0xe033:handler and must begin with `pop rcx; pop r11`. A page fault's
//! address is in `vcpu_info.arch.cr2`. The failsafe callback gets
//! `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss`.
//!
//! To return, the handler pushes an [`arch::IretContext`] and *jumps* to the iret stub
//! (`hypercall_page + 23 * 32`); `upcall_mask` becomes `!IF` from the frame. A kernel returning
//! to kernel mode may instead use native `iretq` after ORing 3 into the saved cs and ss.
//!
//! ### 5. Events, memory, devices
//!
//! Event channels are bits in `shared_info` ([`shared_info`], [`event_channel`]); page tables
//! change only through [`mmu`] hypercalls; devices are split drivers over grant-shared rings
//! ([`grant_table`], [`io`]) found through XenStore ([`xenstore`]).
//!
//! ## Crate map
//!
//! | module | what | Xen header |
//! |---|---|---|
//! | [`types`] | `Mfn`, `Pfn`, `Gfn`, `PAddr`, `VAddr`, `DomId`, `EvtchnPort`, `GrantRef` | `xen.h` |
//! | [`nr`], [`hypercall_page`] | hypercall numbers, the stub page | `xen.h` |
//! | [`errno`] | `Errno`, `HcResult` | `errno.h` |
//! | [`start_info`], [`shared_info`] | boot page, shared page, time | `xen.h` |
//! | [`elfnote`] | ELF note types and a note parser | `elfnote.h` |
//! | [`arch`] | selectors, address layout, `TrapInfo`, `IretContext`, bounce frame | `arch-x86/*.h` |
//! | [`callback`], [`sched`], [`version`], [`vm_assist`] | small hypercalls | same names |
//! | [`console`] | `console_io` and the console ring page | `xen.h`, `io/console.h` |
//! | [`mmu`], [`multicall`] | page-table updates, PTE bits, batches | `xen.h` |
//! | [`event_channel`] | `EVTCHNOP_*`, `VIRQ_*` | `event_channel.h`, `xen.h` |
//! | [`grant_table`], [`memory`], [`vcpu`], [`physdev`] | multi-op hypercalls | same names |
//! | [`xenstore`] | XenStore wire format and ring page | `io/xs_wire.h` |
//! | [`io`] | ring header, blkif, netif, xenbus states | `io/*.h` |
//! | `guest` (feature) | `raw` hypercall asm and typed wrappers | — |
//!
//! Constant names are Xen's, upper-cased (`SCHEDOP_yield` is [`sched::SCHEDOP_YIELD`]). A C
//! field named `type` is called `kind`.
//!
//! ## Differences from Xen
//!
//! Where we deliberately implement less than Xen (the ABI is the same; these calls return
//! `-ENOSYS` or `-EOPNOTSUPP`):
//!
//! - **Event channels: 2-level ABI only** (4096 ports in `shared_info`). The FIFO ABI
//!   (`EVTCHNOP_init_control`, `expand_array`, `set_priority`) is not implemented.
//! - **Grant tables: version 1 only.** `GNTTABOP_set_version` accepts only 1; v2 entries and
//!   status frames are not implemented.
//! - 64-bit PV guests only: no 32-bit PV (compat) guests, no HVM/PVH.
//! - `domctl` / `sysctl` ([`domctl`], [`sysctl`]): only the operations our toolstack uses, at
//!   interface version 0x15 for both. They are privileged and unstable in Xen too, so a
//!   guest kernel never needs them; the `handle` of `getdomaininfo` carries the domain's name.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Compile-time check of a struct's size and field offsets against Xen's headers:
/// `assert_layout!(T, size = N, field = offset, ...)`. Exported so other crates can pin their
/// own shared layouts the same way.
#[macro_export]
macro_rules! assert_layout {
    ($t:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        $crate::__private::static_assertions::const_assert_eq!(
            ::core::mem::size_of::<$t>(),
            $size
        );
        $($crate::__private::static_assertions::const_assert_eq!(
            ::core::mem::offset_of!($t, $field),
            $off
        );)*
    };
}

#[doc(hidden)]
pub mod __private {
    pub use static_assertions;
}

pub mod arch;
pub mod callback;
pub mod console;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hypercall_page;
pub mod io;
pub mod memory;
pub mod mmu;
pub mod multicall;
pub mod nr;
pub mod physdev;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod sysctl;
pub mod types;
pub mod vcpu;
pub mod version;
pub mod vm_assist;
pub mod xenstore;

// The guest wrappers call the unsafe raw hypercall functions; the asm itself is only in
// `guest::raw`.
#[cfg(feature = "guest")]
#[allow(unsafe_code)]
pub mod guest;

pub use errno::{Errno, HcResult, ret_to_result};
pub use types::{
    DomId, EvtchnPort, FrameTooLarge, Gfn, GrantFrame, GrantRef, GuestHandle, Mfn, PAGE_SHIFT,
    PAGE_SIZE, PAddr, Pfn, VAddr,
};
