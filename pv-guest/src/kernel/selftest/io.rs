//! Port I/O privilege: a guest's `in`/`out` is #GP until its kernel raises its virtual IOPL
//! with `PHYSDEVOP_set_iopl` (any domain may, as on Xen), then emulated: dom0 reaches real
//! ports except the hypervisor's own, which like every port of a domU read as all ones (the
//! PCI address and CMOS index ports latch what was written) and drop writes. `cli`/`sti` are
//! ignored under the IOPL and #GP without it.

use alloc::string::String;

use hypercall_abi::guest;

use super::run::Test::{self, Check};
use super::trap::{RESUME, expect_trap, resume_hook, trap_vector};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[("iopl", Check(iopl))];

fn set_iopl(iopl: u32) -> Result<(), String> {
    use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};
    let mut op = PhysdevSetIopl { iopl };
    #[allow(unsafe_code)]
    // SAFETY: the op matches PHYSDEVOP_set_iopl.
    let r = unsafe { guest::physdev_op(PHYSDEVOP_SET_IOPL, &mut op) };
    r.map(|_| ()).map_err(|e| alloc::format!("set_iopl({iopl}): {e:?}"))
}

/// Runs port I/O that must not trap; its result in eax.
macro_rules! port {
    ($asm:literal, $dx:expr, $eax:expr) => {{
        let mut eax: u32 = $eax;
        let v = trap_vector!($asm, in("dx") $dx as u16, inout("eax") eax);
        RESUME.store(0, core::sync::atomic::Ordering::SeqCst);
        if v != u64::MAX {
            return Err(alloc::format!("{}: vector {}", $asm, v as i64));
        }
        eax
    }};
}

/// Port I/O: #GP without IOPL; with it, real ports for dom0, all ones for the rest.
pub fn iopl() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    expect_trap!(13, "in eax, dx", in("dx") 0xCFCu16, out("eax") _);
    expect_trap!(13, "cli");
    set_iopl(1)?;
    let r = ports();
    set_iopl(0)?;
    expect_trap!(13, "in al, dx", in("dx") 0x60u16, out("al") _);
    r
}

fn ports() -> Result<(), String> {
    port!("cli", 0, 0);
    port!("sti", 0, 0);
    // PCI configuration space: the host bridge's vendor id is Intel's on QEMU's machines, for
    // dom0; a domU sees the address it wrote latched and no device.
    let id = port!("out dx, eax\n mov dx, 0xCFC\n in eax, dx", 0xCF8, 0x8000_0000);
    let latched = port!("in eax, dx", 0xCF8, 0);
    if pv_guest::start_info().is_privileged() {
        if id & 0xFFFF != 0x8086 {
            return Err(alloc::format!("PCI 00:00.0 id {id:#x}"));
        }
    } else if id != 0xFFFF_FFFF || latched != 0x8000_0000 {
        return Err(alloc::format!("a domU's PCI read {id:#x}, address latch {latched:#x}"));
    } else if port!("in al, dx", 0x60, 0) & 0xFF != 0xFF {
        return Err("a domU read a keyboard port".into());
    }
    // The hypervisor's own ports (its console, the RTC) are out of reach: dropped, all ones,
    // the CMOS index latched.
    port!("out dx, al", 0x3F8, u32::from(b'!'));
    let idx = port!("out dx, al\n in al, dx", 0x70, 0x0A) & 0xFF;
    let data = port!("mov dx, 0x71\n in al, dx", 0x70, 0) & 0xFF;
    let domu = !pv_guest::start_info().is_privileged();
    if idx != 0x0A || (domu && data != 0xFF) {
        return Err(alloc::format!("CMOS index {idx:#x}, data {data:#x}"));
    }
    Ok(())
}
