//! The two consoles: `console_io` (hypercall 18), the hypervisor's own console that dom0 (and,
//! in debug builds, any domain) can write, and the shared-page console ring
//! (`xencons_interface`) a domU uses through `start_info.console.domU`.
//!
//! The ring page has an input ring (backend -> guest) and an output ring (guest -> backend),
//! each indexed by free-running `u32` counters masked by the ring size. The producer writes
//! bytes, then a write barrier, then its `*_prod`; the consumer reads `*_prod`, a read barrier,
//! the bytes, then a full barrier before publishing `*_cons`. The ring logic itself lives in the
//! `ring-buffers` crate; this module is only the layout.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `console_io` command: write `count` bytes from `buffer`.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `console_io` command: read up to `count` bytes into `buffer` (dom0); returns bytes read.
pub const CONSOLEIO_READ: u32 = 1;

/// Offset of the input ring (backend -> guest).
pub const IN_OFF: usize = 0;
/// Size of the input ring.
pub const IN_SIZE: usize = 1024;
/// Offset of the output ring (guest -> backend).
pub const OUT_OFF: usize = 1024;
/// Size of the output ring.
pub const OUT_SIZE: usize = 2048;
/// Offset of `in_cons` (written by the guest).
pub const IN_CONS: usize = 3072;
/// Offset of `in_prod` (written by the backend).
pub const IN_PROD: usize = 3076;
/// Offset of `out_cons` (written by the backend).
pub const OUT_CONS: usize = 3080;
/// Offset of `out_prod` (written by the guest).
pub const OUT_PROD: usize = 3084;
/// Offset of the `connection` byte.
pub const CONNECTION: usize = 3088;

/// `connection`: the backend is connected (the steady state).
pub const XENCONSOLE_CONNECTED: u8 = 0;
/// `connection`: the backend is (re)connecting; the guest should wait before using the ring.
pub const XENCONSOLE_DISCONNECTED: u8 = 1;

/// The console ring page (`xencons_interface`, 3092 bytes at the start of a 4 KiB page).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenconsInterface {
    /// Input ring: the backend produces, the guest consumes.
    pub input: [u8; IN_SIZE],
    /// Output ring: the guest produces, the backend consumes.
    pub output: [u8; OUT_SIZE],
    /// Guest-written consumer index of `input`.
    pub in_cons: u32,
    /// Backend-written producer index of `input`.
    pub in_prod: u32,
    /// Backend-written consumer index of `output`.
    pub out_cons: u32,
    /// Guest-written producer index of `output`.
    pub out_prod: u32,
    /// Backend-written `XENCONSOLE_*` state.
    pub connection: u8,
    /// Padding to the struct's 4-byte alignment.
    pub _pad: [u8; 3],
}

crate::assert_layout!(
    XenconsInterface,
    size = 3092,
    input = IN_OFF,
    output = OUT_OFF,
    in_cons = IN_CONS,
    in_prod = IN_PROD,
    out_cons = OUT_CONS,
    out_prod = OUT_PROD,
    connection = CONNECTION
);

/// Ring position of a free-running index (`MASK_XENCONS_IDX`).
#[must_use]
pub const fn mask_idx(idx: u32, ring_size: usize) -> usize {
    idx as usize & (ring_size - 1)
}
