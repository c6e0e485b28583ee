//! xen-core: a Xen-compatible x86_64 PV hypervisor, as a library that the `xen-core` image
//! links (`main.rs` only names where the hardware enters it). One folder per Xen concept, each
//! holding the concept's hardware-free rules (compiled for the host too, so `cargo test`
//! covers them), its hypervisor state and its hypercall handlers (those two only for
//! `target_os = "none"`):
//!
//! - `arch`: x86_64 boot to long mode, processor tables, entry and exit stubs, paging, APIC,
//!   TSC, serial, guest-memory copies. Mirrors the generic folders; names none of them.
//! - `mm`: frame table, page types and validation (host); the memory core (direct map, the
//!   global `Mm`, the heap); `mmu_update`, `update_va_mapping`, `mmuext_op`, `memory_op`.
//! - `domain`: domain and vCPU data and the domain table; the PV builder is the `pvbuild` crate;
//!   building, shutdown, crash and destruction across subsystems; `domctl`.
//! - `sched`: the credit policy (host); run state, context switch, the hardware timer, guest
//!   time; `sched_op`, `set_timer_op`, `vcpu_op`.
//! - `event`: port bookkeeping (host); pending and mask bits, VIRQs, wake-ups;
//!   `event_channel_op`.
//! - `grant`: grant rules and books (host); grant tables, map, unmap, copy; `grant_table_op`.
//! - `traps`: bounce frames (host); trap and syscall entry, exception and event delivery,
//!   emulation, the way back to a guest; `set_trap_table`, callbacks, `iret`, `physdev_op`.
//! - `console`: the guest-message rate limit (host); the log; `console_io`.
//! - `boot`: multiboot, command line, boot memory map (host); options, the boot sequence.
//! - `hypercall`: the one table of every hypercall and dispatch from it, what a handler is
//!   given; `multicall`, `xen_version`, `sysctl`.
//!
//! Layers, each importing only those below it: `arch`; the memory core; the data types (vCPU
//! and domain records, grant tables, the hypercall context); the scheduler's run state, timer
//! and switch; event channels, which wake vCPUs by calling down into the scheduler; grant
//! mapping and copying; the domain lifecycle and builder, which call down into all of those;
//! trap delivery and the way back to a guest (`traps::exit`: timers, the scheduling decision,
//! upcalls); the hypercall handlers; the table; the trap entry; boot. Two pairs of files
//! import each other: `hypercall::table` and `hypercall::multicall` (a multicall runs
//! hypercalls through the table that lists it), and `arch::cpu` and `arch::entry` (the
//! processor tables point at the entry stubs, which return to the tables' guest selectors).
//!
//! `unsafe` is allowed in `arch` and the memory core (`mm::machine`, `mm::heap`,
//! `mm::scratch`) only.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
pub mod boot;
pub mod console;
pub mod domain;
pub mod event;
pub mod grant;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod mm;
pub mod sched;
pub mod traps;
