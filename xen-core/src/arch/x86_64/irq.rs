//! Hardware interrupts: the local APIC timer (the scheduler's tick and the guests' timers)
//! and spurious interrupts. Legacy PIC interrupts are masked at boot.

use x86_64::instructions::port::Port;

use super::apic::{self, SPURIOUS_VECTOR, TIMER_VECTOR};

/// Masks both legacy PICs (they are remapped out of the exception range first, in case a
/// stray interrupt still arrives).
pub fn mask_legacy_pic() {
    let seq: [(u16, u8); 10] = [
        (0x20, 0x11),
        (0xA0, 0x11),
        (0x21, 0x20),
        (0xA1, 0x28),
        (0x21, 4),
        (0xA1, 2),
        (0x21, 1),
        (0xA1, 1),
        (0x21, 0xFF),
        (0xA1, 0xFF),
    ];
    for (port, value) in seq {
        // SAFETY: the 8259 PIC ports; this is the standard init sequence, ending fully masked.
        unsafe { Port::<u8>::new(port).write(value) };
    }
}

/// Handles a hardware interrupt (from guest or hypervisor context); true when it was the
/// local APIC timer, whose deadlines the caller runs (arch knows nothing of them).
pub fn handle(vector: u64) -> bool {
    match vector {
        TIMER_VECTOR => {
            apic::eoi();
            true
        }
        SPURIOUS_VECTOR => false,
        0x20..=0x2F => false, // masked legacy PIC: spurious IRQ7/15 can still show up; no EOI owed
        _ => {
            apic::eoi();
            log::warn!("unexpected interrupt vector {vector:#x}");
            false
        }
    }
}
