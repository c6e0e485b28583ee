//! Hardware interrupts: the local APIC timer (the scheduler's tick and the guests' timers),
//! device interrupts through the IOAPIC (`ioapic`), and spurious interrupts. Legacy PIC
//! interrupts are masked at boot.

use x86_64::instructions::port::Port;

use super::apic::{self, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::ioapic;

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

/// What an interrupt was, for the generic code to act on (arch knows nothing of deadlines
/// or of who owns a device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The local APIC timer: run expired deadlines.
    Timer,
    /// A device on this GSI. A level-triggered pin is masked already, until its owner's EOI.
    Device(u32),
    /// Nothing to do.
    None,
}

/// Handles a hardware interrupt (from guest or hypervisor context) up to the local APIC's EOI.
pub fn handle(vector: u64) -> Interrupt {
    match vector {
        TIMER_VECTOR => {
            apic::eoi();
            Interrupt::Timer
        }
        SPURIOUS_VECTOR => Interrupt::None,
        0x20..=0x2F => Interrupt::None, // masked legacy PIC: spurious IRQ7/15 can still show up; no EOI owed
        _ => match ioapic::gsi_of_vector(vector) {
            Some(gsi) => {
                // Masked before the EOI: a line still asserted must not fire again until the
                // device's driver has quieted it and said so.
                if ioapic::is_level(gsi) {
                    ioapic::mask(gsi);
                }
                apic::eoi();
                Interrupt::Device(gsi)
            }
            None => {
                apic::eoi();
                log::warn!("unexpected interrupt vector {vector:#x}");
                Interrupt::None
            }
        },
    }
}
