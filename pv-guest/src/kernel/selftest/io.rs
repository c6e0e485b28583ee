//! Port I/O privilege: a guest's `in`/`out` is #GP until dom0 raises its IOPL with
//! `PHYSDEVOP_set_iopl` (a domU is refused), then emulated, except the hypervisor's own ports.

use alloc::string::String;

use hypercall_abi::{Errno, guest};

use super::run::Test::{self, Check};
use super::trap::{expect_trap, resume_hook};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[("iopl", Check(iopl))];

/// Port I/O: #GP until dom0 raises its IOPL, then emulated, except the hypervisor's ports.
pub fn iopl() -> Result<(), String> {
    use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};
    pv_guest::traps::set_exception_hook(resume_hook);
    expect_trap!(13, "in eax, dx", in("dx") 0xCFCu16, out("eax") _);
    let mut op = PhysdevSetIopl { iopl: 1 };
    #[allow(unsafe_code)]
    // SAFETY: the op matches PHYSDEVOP_set_iopl.
    let r = unsafe { guest::physdev_op(PHYSDEVOP_SET_IOPL, &mut op) };
    if !pv_guest::start_info().is_privileged() {
        return if r == Err(Errno::EPERM) {
            Ok(())
        } else {
            Err(alloc::format!("a domU set its IOPL: {r:?}"))
        };
    }
    r.map_err(|e| alloc::format!("set_iopl: {e:?}"))?;
    // PCI configuration space: the host bridge's vendor id is Intel's on QEMU's machines.
    let id: u32;
    #[allow(unsafe_code)]
    // SAFETY: emulated port I/O to the PCI configuration ports.
    unsafe {
        core::arch::asm!("out dx, eax", "mov dx, 0xCFC", "in eax, dx", inout("dx") 0xCF8u16 => _, inout("eax") 0x8000_0000u32 => id);
    }
    if id & 0xFFFF != 0x8086 {
        return Err(alloc::format!("PCI 00:00.0 id {id:#x}"));
    }
    // The hypervisor's own console port stays out of reach.
    expect_trap!(13, "out dx, al", in("dx") 0x3F8u16, in("al") b'!');
    Ok(())
}
