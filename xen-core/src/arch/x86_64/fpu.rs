//! Guest FPU/SSE state, saved and restored eagerly on every vCPU switch with
//! `fxsave64`/`fxrstor64` (never lazily through CR0.TS: lazy switching leaked state between
//! contexts, LazyFP / CVE-2018-3665). The hypervisor itself is soft-float and never touches
//! these registers, so a guest's state survives every hypercall and interrupt untouched.

use x86_64::registers::control::{Cr0, Cr0Flags};

/// An `fxsave` image.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state after `fninit` with SSE exceptions masked: FCW 0x37F, MXCSR 0x1F80.
    pub fn initial() -> Self {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        a[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        a[28..32].copy_from_slice(&0xFFFFu32.to_le_bytes()); // MXCSR_MASK as most CPUs report
        FxArea(a)
    }
}

/// Saves this CPU's FPU/SSE registers into `area`.
pub fn save(area: &mut FxArea) {
    clear_ts();
    // SAFETY: `area` is a 512-byte, 16-aligned buffer; CR0.TS is clear so fxsave cannot #NM;
    // CR4.OSFXSR is set at boot.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack)) };
}

/// Loads `area` into this CPU's FPU/SSE registers.
pub fn restore(area: &FxArea) {
    clear_ts();
    // SAFETY: as in `save`; the image came from `save` or `initial`, whose reserved MXCSR bits
    // are zero, so fxrstor cannot #GP.
    unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack)) };
}

/// Sets CR0.TS (the guest asked for `fpu_taskswitch(1)`: its next FPU use raises #NM).
pub fn set_ts() {
    let cr0 = Cr0::read();
    if !cr0.contains(Cr0Flags::TASK_SWITCHED) {
        // SAFETY: only the TS bit changes.
        unsafe { Cr0::write(cr0 | Cr0Flags::TASK_SWITCHED) };
    }
}

/// Clears CR0.TS.
pub fn clear_ts() {
    // SAFETY: CLTS only clears CR0.TS.
    unsafe {
        x86_64::instructions::interrupts::without_interrupts(|| {
            core::arch::asm!("clts", options(nostack))
        })
    };
}
