//! Ending the machine. Under QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=4`, writing
//! `v` to port 0xF4 ends QEMU with status `2v + 1`; the codes below were chosen so no status
//! can be mistaken for QEMU's own (0 and 1). Without that device we fall back to the ACPI
//! power-off port of QEMU's PIIX4 and to a keyboard-controller reset, then halt.

use x86_64::instructions::port::Port;

/// How the machine ends, and the QEMU exit status each gives (2v + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// dom0 powered off: status 33.
    Poweroff = 0x10,
    /// dom0 asked for a reboot: status 35.
    Reboot = 0x11,
    /// dom0 crashed (or shut down with reason crash): status 37.
    Crash = 0x12,
    /// The hypervisor itself failed (panic, fault in hypervisor context): status 39.
    HypervisorFailure = 0x13,
}

/// Ends the machine. Never returns.
pub fn exit(code: ExitCode) -> ! {
    let mut debug_exit = Port::<u32>::new(0xF4);
    // SAFETY: port 0xF4 is QEMU's isa-debug-exit when present; otherwise the write is ignored.
    unsafe { debug_exit.write(code as u32) };
    match code {
        ExitCode::Reboot => {
            let mut kbc = Port::<u8>::new(0x64);
            // SAFETY: 0xFE to the keyboard controller pulses the CPU reset line.
            unsafe { kbc.write(0xFE) };
        }
        _ => {
            let mut acpi = Port::<u16>::new(0x604);
            // SAFETY: QEMU's PIIX4 PM1a control block: SLP_TYPa=0 | SLP_EN powers off.
            unsafe { acpi.write(0x2000) };
        }
    }
    super::cpu::halt_forever()
}
