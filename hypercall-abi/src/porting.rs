//! # Porting guide: a PV kernel on this crate
//!
//! This page walks through writing a 64-bit Xen PV kernel in Rust with this crate alone (feature
//! `guest`). The kernel it follows is [at the end of the page](#a-minimal-kernel), whole: it is
//! `hypercall-abi/examples/minimal-kernel` in the repository, which the system tests build
//! outside the source tree and boot on xen-core (as dom0 and as a domU) and on Xen 4.17 (as
//! dom0). To start a kernel of your own, copy that folder anywhere and point its
//! `hypercall-abi` dependency at this crate; that is the whole port.
//!
//! ## 1. The image: ELF notes and linking
//!
//! A PV kernel is an ELF64 executable with a `PT_NOTE` segment (or `SHT_NOTE` section) of notes
//! owned by `"Xen"` ([`elfnote`](crate::elfnote)). [`xen_elf_notes!`](crate::xen_elf_notes)
//! writes them:
//!
//! | note | value |
//! |---|---|
//! | `XEN_ELFNOTE_ENTRY` (1) | virtual address of the entry point |
//! | `XEN_ELFNOTE_HYPERCALL_PAGE` (2) | virtual address of the `hypercall_page` symbol |
//! | `XEN_ELFNOTE_VIRT_BASE` (3) | virtual address pfn 0 is mapped at |
//! | `XEN_ELFNOTE_PADDR_OFFSET` (4) | equal to `VIRT_BASE` when `p_paddr` holds VAs |
//! | `XEN_ELFNOTE_XEN_VERSION` (5) | `"xen-3.0"` |
//! | `XEN_ELFNOTE_GUEST_OS` (6) | any name |
//! | `XEN_ELFNOTE_LOADER` (8) | `"generic"` |
//! | `XEN_ELFNOTE_FEATURES` (10) | `XENFEAT_*` names joined by `\|`, `!` = required, e.g. `"writable_descriptor_tables\|pae_pgdir_above_4gb"` |
//! | `XEN_ELFNOTE_SUPPORTED_FEATURES` (17) | bitmap; Xen boots a dom0 kernel only with `XENFEAT_dom0` (bit 11) set |
//!
//! The kernel is loaded at `p_paddr + (VIRT_BASE - PADDR_OFFSET)`. Mind `FEATURES`: a feature
//! marked `!` that the hypervisor does not implement makes it refuse the kernel. xen-core
//! implements as required features only `writable_descriptor_tables` and
//! `pae_pgdir_above_4gb`; Linux's `!writable_page_tables` (it writes its page tables directly
//! and relies on Xen emulating the writes) is refused until xen-core emulates them. A kernel
//! that changes page tables only through `mmu_update` / `update_va_mapping` requires nothing.
//!
//! Linking takes three things, all in the example's `build.rs` (as
//! `cargo:rustc-link-arg-bins=...`, the script's path from `CARGO_MANIFEST_DIR`), so the folder
//! needs no configuration from outside:
//!
//! - a linker script (`kernel.ld`): the image linked at `VIRT_BASE` with physical = virtual
//!   addresses, `.note.Xen` in a `PT_NOTE` segment, the hypercall page at a page boundary;
//! - `--no-pie`: `x86_64-unknown-none` links a static PIE by default, but a domain builder
//!   applies no relocations, so every address (the notes' `.quad _start` too) must be final.
//!   The code stays position independent; when the linker says "recompile with -fPIC" about an
//!   absolute relocation, the fix is this flag, not `-fPIC`;
//! - `-z max-page-size=4096`: segments aligned to 4 KiB, so the image is mapped page by page
//!   from pseudo-physical frame 0 without 2 MiB gaps.
//!
//! Build for `x86_64-unknown-none` (the example's `.cargo/config.toml` and
//! `rust-toolchain.toml` pick it): it has no red zone (the hypervisor writes exception frames
//! just below the interrupted `rsp`) and generates no SSE code (the upcall stub saves only the
//! general registers).
//!
//! ## 2. Entry
//!
//! The builder maps, 1:1 from pfn 0 at `VIRT_BASE` and each part page aligned: the kernel, the
//! ramdisk, the P2M list (one `u64` MFN per pfn), [`StartInfo`](crate::start_info::StartInfo),
//! the XenStore page, the console page, the bootstrap page tables (mapped read-only), one
//! boot-stack page, then at least 512 KiB of slack; the region is rounded up to 4 MiB. The
//! kernel starts with:
//!
//! - `rip` = the `ENTRY` note, `rsp` = top of the boot stack, **`rsi` = virtual address of
//!   `start_info`**, `rflags` = 0x200, all other general registers 0;
//! - `cs` = [`FLAT_KERNEL_CS`](crate::arch::FLAT_KERNEL_CS) (0xe033), `ss` =
//!   [`FLAT_KERNEL_SS`](crate::arch::FLAT_KERNEL_SS) (0xe02b), `ds`/`es`/`fs`/`gs` = 0; the
//!   kernel runs in **ring 3**, like its user space: `cli`, `hlt`, `mov cr3`, `lgdt`, `wrmsr`
//!   fault;
//! - `cr3` = the bootstrap L4 (`start_info.pt_base`);
//! - events masked: every `vcpu_info.evtchn_upcall_mask` is 1 in a zeroed `shared_info`,
//!   whose *machine* address is `start_info.shared_info`.
//!
//! [`pv_start!`](crate::pv_start) defines that entry point (`_start`): it moves to a stack of
//! its own (the builder's is one page) and calls your `fn(Start) -> !` with a
//! [`guest::Start`](crate::guest::Start), the start_info page as a token only the entry can
//! make. Everything the hypervisor told the kernel comes through it: the page's fields, and the
//! P2M list ([`Start::p2m`](crate::guest::Start::p2m), safe lookups both ways).
//!
//! ## 3. Making hypercalls
//!
//! The kernel defines a 4096-byte, page-aligned symbol named `hypercall_page` in an executable
//! section ([`hypercall_page!`](crate::hypercall_page!)) and names it in the `HYPERCALL_PAGE`
//! note. Before entry the hypervisor fills it with 128 stubs of 32 bytes
//! ([`hypercall_page`](mod@crate::hypercall_page)); hypercall `n` is `call hypercall_page + n * 32`
//! with arguments in `rdi, rsi, rdx, r10, r8` and the result in `rax` (negative
//! [`Errno`](crate::Errno) on failure). [`guest`](crate::guest) wraps every hypercall with
//! types; numbers are in [`nr`](crate::nr). Wrappers that let the hypervisor write memory
//! behind the compiler's back, map pages or install entry points are `unsafe fn` with the
//! condition stated; the rest are safe.
//!
//! ## 4. Exceptions and events: the bounce frame
//!
//! The hypervisor delivers an exception, or an event upcall when
//! `evtchn_upcall_pending == 1 && evtchn_upcall_mask == 0`, by building a frame on the guest
//! kernel stack (the current rsp in kernel mode, else the stack given to `stack_switch`),
//! lowest address first:
//!
//! ```text
//! rcx, r11, [error code], rip, cs, rflags, rsp, ss
//! ```
//!
//! The `cs` slot carries the saved upcall mask in bits 32..40; `rflags.IF` is `!saved mask`.
//! Events (and traps registered with [`TI_MASK_EVENTS`](crate::arch::TI_MASK_EVENTS)) then set
//! the mask. The handler runs at `cs:rip` = 0xe033:handler and must begin with `pop rcx; pop
//! r11`. A page fault's address is in `vcpu_info.arch.cr2`. The failsafe callback gets
//! `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss`.
//!
//! To return, the handler restores every register, pushes the flags word of an
//! [`IretContext`](crate::arch::IretContext) (0, or `VGCF_in_syscall`) on top of the frame's
//! `rip, cs, rflags, rsp, ss` and *jumps* to the iret stub (`hypercall_page + 23 * 32`), which
//! pushes `rcx, r11, rax` to complete the context; `upcall_mask` becomes `!IF` from the frame.
//! [`event_upcall!`](crate::event_upcall) writes such a stub around a plain `fn()`, and
//! [`register_event_callback`](crate::guest::register_event_callback) installs it. Without a
//! trap table (`set_trap_table`) an exception crashes the domain.
//!
//! ## 5. shared_info, events and time
//!
//! Map shared_info with [`PageSlot::map_shared_info`](crate::guest::PageSlot::map_shared_info):
//! a [`PageSlot`](crate::guest::PageSlot) is a page of the image that a shared page is mapped
//! over, and the result is an [`AtomicSharedInfo`](crate::shared_info::AtomicSharedInfo), the
//! live page in atomics with the guest's protocols as methods: the two-level pending scan for
//! the upcall handler, masking ports, the PV `cli`/`sti`, and versioned reads of time and
//! wallclock ([`guest::system_time_ns`](crate::guest::system_time_ns)).
//!
//! A timer: bind [`Virq::TIMER`](crate::event_channel::Virq::TIMER) to a port
//! ([`evtchn_bind_virq`](crate::guest::evtchn_bind_virq)), ask for an event at an absolute
//! system time ([`set_timer_op`](crate::guest::set_timer_op) or a single-shot `vcpu_op`), and
//! wait with "mask events, check, [`sched_block`](crate::guest::sched_block)": the block
//! unmasks and returns at once if an event is already pending, so none is lost between check
//! and block. Xen also starts every PV vCPU with a 10 ms periodic timer on `VIRQ_TIMER`;
//! xen-core does not, so stop it
//! ([`vcpu_stop_periodic_timer`](crate::guest::vcpu_stop_periodic_timer)) or ask for it, but
//! don't rely on either default.
//!
//! ## 6. Memory
//!
//! Page tables hold machine frame numbers and are read-only to the kernel once they are
//! tables; change them with [`mmu_update`](crate::guest::mmu_update) or
//! [`update_va_mapping`](crate::guest::update_va_mapping), and free a table only after
//! unpinning it. Frames: the P2M list ([`Start::p2m`](crate::guest::Start::p2m)) maps the
//! kernel's pseudo-physical frames to machine frames; the hypervisor's M2P table answers the
//! other way ([`m2p_entry`](crate::guest::m2p_entry), `unsafe` because Xen leaves holes of
//! machine memory unmapped in it; for its own frames a kernel uses the safe
//! [`P2m::mfn_to_pfn`](crate::guest::P2m::mfn_to_pfn)). More memory:
//! [`populate_physmap`](crate::guest::populate_physmap).
//!
//! ## 7. Grants
//!
//! [`PageSlot::map_grant_table`](crate::guest::PageSlot::map_grant_table) sets up the
//! domain's grant table and maps its first frame as 512
//! [`AtomicGrantEntryV1`](crate::grant_table::AtomicGrantEntryV1)s (0-7 are the toolstack's);
//! an entry's [`permit_access`](crate::grant_table::AtomicGrantEntryV1::permit_access) writes
//! frame and domid before the flags, and
//! [`end_access`](crate::grant_table::AtomicGrantEntryV1::end_access) revokes only when the
//! hypervisor has no mapping or copy in flight. The grant ops have one wrapper each
//! ([`gnttab_copy`](crate::guest::gnttab_copy), [`gnttab_map_grant_ref`](crate::guest::gnttab_map_grant_ref), ...),
//! whose struct carries its command ([`GnttabOp`](crate::grant_table::GnttabOp)).
//!
//! In a [`GnttabCopy`](crate::grant_table::GnttabCopy), name a grant's owner by its real id
//! (xen-core refuses `DOMID_SELF` there; Xen accepts it) and a frame of your own with
//! `DOMID_SELF` (Xen refuses your real id there; xen-core accepts both). A kernel is not told
//! its id; [`own_domid`](crate::guest::own_domid) finds it through the event-channel
//! interface.
//!
//! ## 8. Devices
//!
//! Devices are split drivers over grant-shared rings found through XenStore
//! ([`io`](crate::io), [`xenstore`](crate::xenstore)); the `ring-buffers` crate implements the
//! rings (request/response, console, XenStore). The example kernel prints with
//! [`console_io_write`](crate::guest::console_io_write), which xen-core allows a domU too
//! (prefixing its lines with `(dN)`), while a release build of Xen allows it only to dom0: a
//! domU on Xen prints through its console ring.
//!
//! ## A minimal kernel
//!
//! `src/main.rs`:
//!
//! ```rust,ignore
#![doc = include_str!("../examples/minimal-kernel/src/main.rs")]
//! ```
//!
//! `build.rs`:
//!
//! ```rust,ignore
#![doc = include_str!("../examples/minimal-kernel/build.rs")]
//! ```
//!
//! `kernel.ld`:
//!
//! ```text
#![doc = include_str!("../examples/minimal-kernel/kernel.ld")]
//! ```
//!
//! `Cargo.toml`:
//!
//! ```toml
#![doc = include_str!("../examples/minimal-kernel/Cargo.toml")]
//! ```
