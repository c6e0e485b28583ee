//! Running an instruction that is expected to trap, and seeing which vector it raised: the
//! harness of the self-tests (and attacks) that check how the hypervisor reflects exceptions
//! and privileged instructions to a guest. [`trap_vector!`] arms [`resume_hook`] with the
//! address after the instruction; the hook records the vector and error code and resumes
//! there.
//!
//! The macros name this module by its full path, `$crate::kernel::selftest::trap`: both kernels
//! that compile it (pv-guest, and dom0, which mounts some of these files) put it there.

use core::sync::atomic::{AtomicU64, Ordering};

use pv_guest::arch::TrapFrame;

pub(crate) static RESUME: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEEN: AtomicU64 = AtomicU64::new(u64::MAX);
pub(crate) static SEEN_ERR: AtomicU64 = AtomicU64::new(0);

/// The exception hook for [`trap_vector!`]: records the vector and error code and resumes
/// after the instruction, if an attempt is armed.
pub(crate) fn resume_hook(frame: &mut TrapFrame) -> bool {
    let resume = RESUME.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return false;
    }
    SEEN.store(frame.vector, Ordering::SeqCst);
    SEEN_ERR.store(frame.error_code, Ordering::SeqCst);
    frame.rip = resume;
    true
}

/// Runs `asm` (an instruction expected to trap) with [`resume_hook`] armed to resume after it;
/// evaluates to the vector seen (`u64::MAX` if nothing trapped). The hook must be installed.
macro_rules! trap_vector {
    ($asm:literal $(, $($arg:tt)*)?) => {{
        $crate::kernel::selftest::trap::SEEN.store(u64::MAX, core::sync::atomic::Ordering::SeqCst);
        #[allow(unsafe_code)]
        // SAFETY: the instruction under test traps; the hook resumes at label 2, and the
        // asm declares the registers it touches.
        unsafe {
            core::arch::asm!(
                "lea {tmp}, [rip + 2f]",
                "mov [{resume}], {tmp}",
                $asm,
                "2:",
                resume = in(reg) $crate::kernel::selftest::trap::RESUME.as_ptr(),
                tmp = out(reg) _,
                $($($arg)*)?
            );
        }
        $crate::kernel::selftest::trap::SEEN.load(core::sync::atomic::Ordering::SeqCst)
    }};
}
pub(crate) use trap_vector;

/// In a self-test returning `Result<(), String>`: runs `asm` as [`trap_vector!`] does and
/// returns an error from the test unless it raised `vector`.
macro_rules! expect_trap {
    ($vector:expr, $asm:literal $(, $($arg:tt)*)?) => {{
        let what: &str = $asm;
        let seen = $crate::kernel::selftest::trap::trap_vector!($asm $(, $($arg)*)?);
        if seen != $vector {
            return Err(alloc::format!("{what}: expected vector {}, saw {}", $vector, seen as i64));
        }
    }};
}
pub(crate) use expect_trap;
