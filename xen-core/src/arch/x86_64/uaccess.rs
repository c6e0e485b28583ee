//! The only code that touches guest memory by guest virtual address: `copy_from_guest` and
//! `copy_to_guest`. The guest's page tables are live while the hypervisor runs on its behalf,
//! so a guest pointer is dereferenced directly, after two checks that make it safe:
//!
//! 1. the whole range lies in guest address space (below the canonical hole, or above the
//!    hypervisor's reserved slots), so a guest cannot name hypervisor memory;
//! 2. the copy instruction has an entry in the exception table: if the guest's mapping is
//!    absent or read-only, the #PF handler resumes at the fixup, which reports the bytes left.
//!
//! With SMAP on, supervisor accesses to user pages fault unless RFLAGS.AC is set, so only these
//! copies open that window (`stac`/`clac`), and only for the `rep movsb` itself.

use core::sync::atomic::{AtomicBool, Ordering};

use hypercall_abi::Errno;

use super::layout::{XEN_L4_END, XEN_L4_FIRST};

/// Lowest guest address above the hypervisor's slots.
const GUEST_HIGH_START: u64 = 0xFFFF_0000_0000_0000 | ((XEN_L4_END as u64) << 39);
const HV_LOW: u64 = 0xFFFF_0000_0000_0000 | ((XEN_L4_FIRST as u64) << 39);
/// One past the top of the lower canonical half.
const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;
static_assertions::const_assert_eq!(HV_LOW, 0xFFFF_8000_0000_0000);
static_assertions::const_assert_eq!(GUEST_HIGH_START, 0xFFFF_8800_0000_0000);

pub(super) static SMAP_ON: AtomicBool = AtomicBool::new(false);

/// Records whether CR4.SMAP is on (then `stac`/`clac` must bracket guest accesses).
pub fn set_smap(on: bool) {
    SMAP_ON.store(on, Ordering::Relaxed);
}

/// Entries into the hypervisor that found EFLAGS.AC set with SMAP on (see [`ac_on_entry`]).
static AC_ON_ENTRY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Checks, at an entry from a guest, that EFLAGS.AC is clear: a guest may run with AC set,
/// and with AC set SMAP no longer stops the hypervisor touching guest pages by mistake. The
/// entry paths clear it (`clac` in the trap entry, `IA32_FMASK` for `syscall`); this says so
/// loudly, once, if one ever does not (the system test `smap-ac` drives every path with AC
/// set). One `pushf` per entry.
pub fn ac_on_entry(path: &str) {
    if !SMAP_ON.load(Ordering::Relaxed) {
        return;
    }
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack; no memory of anyone else's is touched.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags)) };
    if flags & (1 << 18) != 0 && AC_ON_ENTRY.fetch_add(1, Ordering::Relaxed) == 0 {
        log::error!("EFLAGS.AC set in the hypervisor on a {path} entry: SMAP is off for it");
    }
}

/// Whether `[addr, addr + len)` lies wholly in memory a guest may name.
pub fn is_guest_range(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else { return false };
    if len == 0 {
        return true;
    }
    end <= LOWER_HALF_END || addr >= GUEST_HIGH_START
}

core::arch::global_asm!(
    r#"
    .section .text.uaccess, "ax"
    /* u64 uaccess_copy(dst, src, len): bytes NOT copied (0 on success). */
    .globl uaccess_copy
uaccess_copy:
    movq %rdx, %rcx
10: rep movsb
    xorl %eax, %eax
    ret
11: movq %rcx, %rax
    ret

    .globl uaccess_copy_smap
uaccess_copy_smap:
    movq %rdx, %rcx
    stac
12: rep movsb
    clac
    xorl %eax, %eax
    ret
13: clac
    movq %rcx, %rax
    ret

    .section .ex_table, "a"
    .balign 8
    .quad 10b, 11b
    .quad 12b, 13b
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn uaccess_copy(dst: *mut u8, src: *const u8, len: u64) -> u64;
    fn uaccess_copy_smap(dst: *mut u8, src: *const u8, len: u64) -> u64;
    static __ex_table_start: u8;
    static __ex_table_end: u8;
}

fn raw_copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller checked that the guest side lies in guest address space (so no
    // hypervisor memory is named) and that the hypervisor side is a live buffer of `len` bytes;
    // a fault on the guest side is caught by the exception table and reported, not taken.
    let left = unsafe {
        if SMAP_ON.load(Ordering::Relaxed) {
            uaccess_copy_smap(dst, src, len as u64)
        } else {
            uaccess_copy(dst, src, len as u64)
        }
    };
    if left == 0 { Ok(()) } else { Err(Errno::EFAULT) }
}

/// Copies `dst.len()` bytes from guest virtual address `src`. `-EFAULT` if any byte is not
/// readable by the current guest.
pub fn copy_from_guest(dst: &mut [u8], src: u64) -> Result<(), Errno> {
    if !is_guest_range(src, dst.len() as u64) {
        return Err(Errno::EFAULT);
    }
    raw_copy(dst.as_mut_ptr(), src as *const u8, dst.len())
}

/// Copies `src` to guest virtual address `dst`. `-EFAULT` if any byte is not writable by the
/// hypervisor through the guest's mappings (absent, or read-only: CR0.WP is on).
pub fn copy_to_guest(dst: u64, src: &[u8]) -> Result<(), Errno> {
    if !is_guest_range(dst, src.len() as u64) {
        return Err(Errno::EFAULT);
    }
    raw_copy(dst as *mut u8, src.as_ptr(), src.len())
}

/// The fixup address for a fault at `rip`, if `rip` is a guest-access instruction.
pub fn fixup_for(rip: u64) -> Option<u64> {
    // SAFETY: the linker script brackets the .ex_table section with these two symbols; it holds
    // pairs of u64 written by the assembly above, 8-aligned, and is never written at run time.
    let table = unsafe {
        let start = core::ptr::addr_of!(__ex_table_start) as *const [u64; 2];
        let end = core::ptr::addr_of!(__ex_table_end) as *const [u64; 2];
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    };
    table.iter().find(|e| e[0] == rip).map(|e| e[1])
}
