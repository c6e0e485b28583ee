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
//! fills it, OUT = the hypervisor fills it). Memory both sides write at any time (the live
//! shared_info page, grant entries) has atomic views with the protocols as methods. Only
//! `guest` contains `unsafe` code: the hypercall instruction (`guest::raw`), mapping shared
//! pages, and the assembly the guest macros expand to.
//!
//! ## Porting guide
//!
//! [`porting`] walks through a PV kernel written against this crate alone, from the ELF notes
//! to shutdown, and ends with the whole of the example kernel the system tests boot on xen-core
//! and on Xen. With feature `guest` a kernel writes no assembly and no page-table code of its
//! own to get there: [`xen_elf_notes!`], [`hypercall_page!`], [`pv_start!`] and
//! [`event_upcall!`] write the notes, the hypercall page, the entry point and the upcall stub,
//! and [`guest`] has a wrapper for every hypercall, the start token, and page slots to map
//! shared pages into.
//!
//! ## Crate map
//!
//! | module | what | Xen header |
//! |---|---|---|
//! | [`porting`] | the porting guide, with the example kernel | — |
//! | [`types`] | `Mfn`, `Pfn`, `Gfn`, `GrantFrame`, `PAddr`, `VAddr`, `DomId`, `EvtchnPort`, `GrantRef`, `GuestHandle` | `xen.h` |
//! | [`nr`], [`hypercall_page`](mod@hypercall_page) | hypercall numbers, the stub page | `xen.h` |
//! | [`errno`] | `Errno`, `HcResult` | `errno.h` |
//! | [`start_info`], [`shared_info`] | boot page, shared page (and its live atomic view), time | `xen.h` |
//! | [`elfnote`] | ELF note types, a note parser, [`xen_elf_notes!`] | `elfnote.h` |
//! | [`arch`] | selectors, address layout, `TrapInfo`, `IretContext`, bounce frame | `arch-x86/*.h` |
//! | [`callback`], [`sched`], [`version`], [`vm_assist`] | small hypercalls | same names |
//! | [`console`] | `console_io` and the console ring page | `xen.h`, `io/console.h` |
//! | [`mmu`], [`multicall`] | page-table updates, PTE bits, batches | `xen.h` |
//! | [`event_channel`] | `EVTCHNOP_*`, `VIRQ_*` ([`Virq`](event_channel::Virq)) | `event_channel.h`, `xen.h` |
//! | [`grant_table`], [`memory`], [`vcpu`], [`physdev`] | multi-op hypercalls (grant entries and their protocol in [`grant_table::entry`]) | same names |
//! | [`xenstore`] | XenStore wire format and ring page | `io/xs_wire.h` |
//! | [`io`] | ring header, blkif, netif, xenbus states | `io/*.h` |
//! | [`guest`] (feature) | `raw` hypercall asm, typed wrappers, `Start`, `P2m`, `PageSlot`, the kernel macros | — |
//!
//! Constant names are Xen's, upper-cased (`SCHEDOP_yield` is [`sched::SCHEDOP_YIELD`]). A C
//! field named `type` is called `kind`. Where a guest passes one of a set of values, a typed
//! form sits next to the raw constants, which stay for decoding:
//! [`ShutdownReason`](sched::ShutdownReason) for `SHUTDOWN_*`, [`Virq`](event_channel::Virq)
//! for `VIRQ_*`, [`Uvmf`](mmu::Uvmf) for `UVMF_*`.
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
//! - `platform_op` ([`platform`]): only setting the wall clock (`XENPF_settime32/64`), for
//!   the privileged domain; other commands are `-ENOSYS`.
//!
//! What else a kernel meets that xen-core does differently from Xen (no writable-page-table
//! emulation, no default periodic timer, `start_info.flags`, grant-table sizes and copy
//! domids, ...) is listed in `docs/PORTING.md`, "Differences from Xen a porter meets".

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
pub mod platform;
pub mod porting;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod sysctl;
pub mod types;
pub mod vcpu;
pub mod version;
pub mod vm_assist;
pub mod xenstore;

// The guest wrappers call the unsafe raw hypercall functions; the hypercall asm itself is
// only in `guest::raw`. Documented without the feature too, so the porting guide's links
// resolve in a plain `cargo doc`.
#[cfg(any(feature = "guest", doc))]
#[allow(unsafe_code)]
pub mod guest;

pub use errno::{Errno, HcResult, ret_to_result};
pub use types::{
    DomId, EvtchnPort, FrameTooLarge, Gfn, GrantFrame, GrantRef, GuestHandle, Mfn, PAGE_SHIFT,
    PAGE_SIZE, PAddr, Pfn, VAddr,
};
