//! What a hypercall handler is given and what it may do with it: the calling vCPU (its
//! context locked), its domain and its registers ([`Hc`]); its answer ([`HcResult`]); guest
//! memory copied in and out once, by value, through `uaccess` (a bad pointer is `-EFAULT`,
//! never a hypervisor fault); and continuations, so a long operation yields between batches.
//! Every handler in every folder builds on this; it builds on nothing but the data types.
//!
//! Arguments arrive in rdi, rsi, rdx, r10, r8 (Xen's x86_64 convention); the result goes to
//! rax as a value or a negative errno.

use alloc::sync::Arc;

use hypercall_abi::Errno;

use crate::arch::entry::GuestRegs;
use crate::arch::uaccess;
use crate::domain::{Domain, Vcpu, VcpuContext};

/// Everything a handler may touch: the calling vCPU (locked), its domain and its registers.
pub struct Hc<'a> {
    pub vcpu: &'a Arc<Vcpu>,
    pub dom: &'a Arc<Domain>,
    pub ctx: &'a mut VcpuContext,
    pub regs: &'a mut GuestRegs,
}

/// A handler's answer: a value for rax, or `None` when the handler set the registers itself
/// (iret).
pub type HcResult = Result<Option<u64>, Errno>;

/// Makes the current hypercall a continuation: the guest re-enters it (rip moves back over the
/// `syscall`) as hypercall `nr` with its first arguments replaced by `args` (the others kept),
/// so a long operation yields to events and the scheduler between batches, as on Xen.
pub fn restart(hc: &mut Hc<'_>, nr: u64, args: &[u64]) -> HcResult {
    let r = &mut *hc.regs;
    r.rax = nr;
    for (reg, &v) in
        [&mut r.rdi, &mut r.rsi, &mut r.rdx, &mut r.r10, &mut r.r8].into_iter().zip(args)
    {
        *reg = v;
    }
    r.rip = r.rip.wrapping_sub(2);
    Ok(None)
}

/// Copies a `T` in from guest memory.
pub fn copy_in<T: zerocopy::FromBytes + zerocopy::IntoBytes>(va: u64) -> Result<T, Errno> {
    let mut v = T::new_zeroed();
    uaccess::copy_from_guest(v.as_mut_bytes(), va)?;
    Ok(v)
}

/// Copies a `T` out to guest memory.
pub fn copy_out<T: zerocopy::IntoBytes + zerocopy::Immutable>(va: u64, v: &T) -> Result<(), Errno> {
    uaccess::copy_to_guest(va, v.as_bytes())
}
