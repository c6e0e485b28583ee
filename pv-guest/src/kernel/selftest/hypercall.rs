//! The hypercall entry from a guest's side: an unknown number is -ENOSYS, a wild pointer is
//! -EFAULT (and the kernel carries on), and a multicall runs each entry with its own result.

use alloc::string::String;

use hypercall_abi::guest::{self, raw};
use hypercall_abi::{Errno, nr};

use super::run::Test::{self, Check};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] =
    &[("enosys", Check(enosys)), ("efault", Check(efault)), ("multicall", Check(multicall))];

/// An unknown hypercall number answers -ENOSYS.
pub fn enosys() -> Result<(), String> {
    for number in [99u64, 127] {
        #[allow(unsafe_code)]
        // SAFETY: hypercall 99/127 has no arguments the hypervisor could act on.
        let r = unsafe { raw::hypercall0(number) };
        if r != Errno::ENOSYS.to_ret() {
            return Err(alloc::format!("hypercall {number} returned {r}"));
        }
    }
    Ok(())
}

/// A wild pointer is -EFAULT, and the kernel carries on.
pub fn efault() -> Result<(), String> {
    let boot_end = pv_guest::memory::pages::boot_region_end(pv_guest::start_info());
    let cases: [(u64, u64); 5] = [
        (0xFFFF_8300_0000_0000, 16), // the hypervisor's direct map
        (0x1000, 16),                // unmapped guest address
        (boot_end - 8, 16),          // starts mapped, runs off the end of the boot mapping
        (0x7FFF_FFFF_FFF8, 16),      // crosses into the non-canonical hole
        (u64::MAX - 4, 16),          // wraps around
    ];
    for (buf, len) in cases {
        #[allow(unsafe_code)]
        // SAFETY: console_io only reads through the pointer; the hypervisor must refuse it.
        let r = unsafe { raw::hypercall3(nr::CONSOLE_IO, 0, len, buf) };
        if r != Errno::EFAULT.to_ret() {
            return Err(alloc::format!("console_io({buf:#x}, {len}) returned {r}"));
        }
    }
    Ok(())
}

/// Several hypercalls in one, each with its own result.
pub fn multicall() -> Result<(), String> {
    use hypercall_abi::multicall::MulticallEntry;
    let mut e = [
        MulticallEntry { op: nr::XEN_VERSION, result: 0, args: [0; 6] },
        MulticallEntry { op: nr::CONSOLE_IO, result: 0, args: [0, 0, 0, 0, 0, 0] },
        MulticallEntry { op: 99, result: 0, args: [0; 6] },
        MulticallEntry { op: nr::MULTICALL, result: 0, args: [0; 6] },
    ];
    #[allow(unsafe_code)]
    // SAFETY: entries are harmless calls; the hypervisor fills in their results.
    unsafe { guest::multicall(&mut e) }.map_err(|e| alloc::format!("multicall: {e:?}"))?;
    let want = [(4u64 << 16) | 17, 0, Errno::ENOSYS.to_ret() as u64, Errno::EINVAL.to_ret() as u64];
    for (i, (got, want)) in e.iter().map(|x| x.result).zip(want).enumerate() {
        if got != want {
            return Err(alloc::format!("entry {i}: {:#x} != {want:#x}", got));
        }
    }
    Ok(())
}
