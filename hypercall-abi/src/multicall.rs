//! `multicall` (hypercall 13): run a batch of hypercalls with one guest/hypervisor crossing.
//! Each entry names a hypercall and its arguments; the hypervisor writes each result back into
//! the entry. The batch stops early only if a call cannot be made at all (the multicall itself
//! then fails); individual call errors are just negative `result`s.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One call in a multicall batch (64 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MulticallEntry {
    /// IN: hypercall number ([`crate::nr`]).
    pub op: u64,
    /// OUT (hypervisor): the call's return value (negative errno on failure).
    pub result: u64,
    /// IN: arguments in register order (rdi, rsi, rdx, r10, r8); the sixth is unused on x86.
    pub args: [u64; 6],
}

crate::assert_layout!(MulticallEntry, size = 64, op = 0, result = 8, args = 16);

impl MulticallEntry {
    /// An entry for hypercall `op` with up to six arguments (missing ones are zero).
    #[must_use]
    pub fn new(op: u64, args: &[u64]) -> Self {
        let mut e = Self { op, ..Self::default() };
        for (d, s) in e.args.iter_mut().zip(args) {
            *d = *s;
        }
        e
    }

    /// The result as a hypercall result.
    pub const fn result(&self) -> crate::HcResult {
        crate::errno::ret_to_result(self.result as i64)
    }
}
