//! The hypercall instruction path: `call hypercall_page + nr * 32`. The only inline assembly
//! the crate runs itself (the guest macros expand to the kernel's own entry and upcall code).
//!
//! # The `hypercall_page` symbol
//!
//! A kernel using these functions must define a 4096-byte, page-aligned symbol named
//! `hypercall_page` in an executable section, and name its address in the
//! `XEN_ELFNOTE_HYPERCALL_PAGE` note. The hypervisor fills it with stubs before the kernel runs
//! (see [`crate::hypercall_page`](mod@crate::hypercall_page)). [`hypercall_page!`](crate::hypercall_page!) defines it;
//! by hand, in a linker script or global asm:
//!
//! ```text
//!     .pushsection .text.hypercall_page, "ax"
//!     .balign 4096
//!     .globl hypercall_page
//! hypercall_page:
//!     .fill 4096, 1, 0xcc
//!     .popsection
//! ```
//!
//! # Register convention
//!
//! rax = result; arguments in rdi, rsi, rdx, r10, r8. The stub saves and restores rcx and r11
//! around `syscall`, but we still declare them clobbered (as Xen's header does), and the
//! hypervisor may clobber every argument register (Xen debug builds poison them), so all five
//! are declared clobbered in every variant. Memory is clobbered (no `nomem`): hypercalls read
//! and write guest memory through the pointers passed.
//!
//! On targets other than `x86_64-unknown-none` (e.g. host unit tests of a crate that enables
//! feature `guest`) the functions compile but panic when called.

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
use crate::errno::Errno;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
unsafe extern "C" {
    /// The page of hypercall stubs, defined by the kernel and filled by the hypervisor.
    static hypercall_page: [u8; 4096];
}

/// Address of stub `nr`, or `None` if `nr` is outside the page.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
#[inline(always)]
fn stub(nr: u64) -> Option<u64> {
    if nr >= crate::nr::HYPERCALL_PAGE_STUBS {
        return None;
    }
    let base = (&raw const hypercall_page) as u64;
    Some(base + nr * crate::nr::STUB_SIZE)
}

#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
#[cold]
fn not_a_guest(nr: u64) -> ! {
    panic!(
        "hypercall-abi: hypercall {nr} issued on a target that is not x86_64-unknown-none; \
         hypercalls exist only inside a PV guest kernel"
    )
}

/// Hypercall with no arguments. The variants with fewer arguments pass zeros for the rest:
/// one path, one set of clobbers, and the cost is a few register clears.
///
/// # Safety
///
/// As for [`hypercall5`].
#[inline]
pub unsafe fn hypercall0(nr: u64) -> i64 {
    // SAFETY: the caller upholds hypercall5's contract; unused arguments are zero.
    unsafe { hypercall5(nr, 0, 0, 0, 0, 0) }
}

/// Hypercall with one argument (rdi).
///
/// # Safety
///
/// As for [`hypercall5`].
#[inline]
pub unsafe fn hypercall1(nr: u64, a1: u64) -> i64 {
    // SAFETY: the caller upholds hypercall5's contract; unused arguments are zero.
    unsafe { hypercall5(nr, a1, 0, 0, 0, 0) }
}

/// Hypercall with two arguments (rdi, rsi).
///
/// # Safety
///
/// As for [`hypercall5`].
#[inline]
pub unsafe fn hypercall2(nr: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: the caller upholds hypercall5's contract; unused arguments are zero.
    unsafe { hypercall5(nr, a1, a2, 0, 0, 0) }
}

/// Hypercall with three arguments (rdi, rsi, rdx).
///
/// # Safety
///
/// As for [`hypercall5`].
#[inline]
pub unsafe fn hypercall3(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: the caller upholds hypercall5's contract; unused arguments are zero.
    unsafe { hypercall5(nr, a1, a2, a3, 0, 0) }
}

/// Hypercall with four arguments (rdi, rsi, rdx, r10).
///
/// # Safety
///
/// As for [`hypercall5`].
#[inline]
pub unsafe fn hypercall4(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    // SAFETY: the caller upholds hypercall5's contract; unused arguments are zero.
    unsafe { hypercall5(nr, a1, a2, a3, a4, 0) }
}

/// Hypercall with five arguments (rdi, rsi, rdx, r10, r8).
///
/// Returns the raw rax value: `>= 0` on success, `-errno` on failure; `-ENOSYS` without
/// calling anything if `nr >= 128`.
///
/// # Safety
///
/// 1. `hypercall_page` must be defined as documented in this module and filled by the
///    hypervisor (true in any kernel booted through the `HYPERCALL_PAGE` note).
/// 2. The caller must be in guest kernel mode.
/// 3. The arguments must be valid for hypercall `nr`: every pointer argument must point to
///    memory of the size and layout that hypercall reads or writes, for the duration of the
///    call, and the hypercall's effect (page-table changes, callbacks, mappings) must not
///    invalidate anything Rust code relies on.
#[inline]
#[allow(unused_variables)]
pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    #[cfg(all(target_arch = "x86_64", target_os = "none"))]
    {
        let Some(addr) = stub(nr) else {
            return Errno::ENOSYS.to_ret();
        };
        let ret: i64;
        // SAFETY: (1) `addr` is stub `nr` of the hypervisor-filled hypercall page, per this
        // function's contract, and lies inside the page (checked by `stub`). (2) The stub runs
        // `syscall` between a balanced push/pop of rcx and r11 and then `ret`s, so control comes
        // back here with rsp restored. (3) Every register the stub or the hypervisor may change
        // is declared: rax (result), rcx, r11 and all five argument registers. (4) Memory effects
        // are the caller's contract, so memory is clobbered (no `nomem`); `call` pushes to the
        // stack, so `nostack` is not given and the compiler keeps the stack usable.
        unsafe {
            core::arch::asm!(
                "call {stub}",
                stub = in(reg) addr,
                lateout("rax") ret,
                out("rcx") _,
                out("r11") _,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                inlateout("r10") a4 => _,
                inlateout("r8") a5 => _,
            );
        }
        ret
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
    {
        not_a_guest(nr)
    }
}
