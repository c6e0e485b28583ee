//! dom0: the privileged domain's kernel, built on `pv-guest`'s runtime. This library holds
//! everything but the kernel binary's own code (`src/main.rs`, `src/kernel/`), one folder per
//! room:
//! - `xenstored/`: the XenStore daemon, a hardware-free engine (host-tested), and its glue to
//!   the domains' rings and to dom0's own in-process client.
//! - `backends/`: dom0's halves of the split devices (console, secondary consoles, block
//!   devices over the virtio disks, vifs on dom0's bridge over the virtio NIC), each bounding
//!   its work per domain and disconnecting a hostile frontend alone.
//! - `drivers/`: the machine's devices dom0 drives (the serial line it reads input from; PCI,
//!   device interrupts as event channels, DMA and MMIO, QEMU's virtio disk and NIC).
//! - `toolstack/`: control of the other domains: it builds every domU from an `xl.cfg`-style
//!   configuration through domctl with the shared builder (`pvbuild`), restarts or keeps them
//!   as their configuration says, and runs the commands dom0's command line asks for.
//! - `shell/`: the `xl`-style shell on dom0's console (`create`, `list`, `console`, ...): its
//!   line editor and command parser (host-tested) and what each command does.
//! - `service.rs`: the rooms dom0 serves domUs with, and the round of work that dispatches to
//!   them; `ring.rs`: reaching a ring another domain shares (map its grant, bind its port).
//!
//! Hardware-free logic compiles on the host and is unit-tested there (`cargo test -p dom0`);
//! what touches hypercalls or shared memory is built for `x86_64-unknown-none` only. `unsafe`
//! is confined to single marked calls in `toolstack::ctl` (domctl, sysctl, and the memory and
//! MMU ops made on another domain's behalf), to `toolstack::memory` (the byte slices over
//! the frames it maps into dom0's window, and dom0's ramdisk) and to the low-level drivers
//! (port I/O, DMA memory, device mappings: `drivers::{pci, dma, irq, virtio, devtest}`).
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod backends;
pub mod drivers;
#[cfg(target_os = "none")]
pub mod ring;
#[cfg(target_os = "none")]
pub mod service;
pub mod shell;
pub mod toolstack;
pub mod xenstored;
