//! Port I/O on behalf of a guest that may do it (emulated `in`/`out`).

use x86_64::instructions::port::Port;

/// Reads `size` (1, 2 or 4) bytes from `port`.
pub fn port_in(port: u16, size: u8) -> u32 {
    // SAFETY: the caller (the I/O emulator) checked the guest may access this port; reading an
    // I/O port touches no memory the hypervisor relies on.
    unsafe {
        match size {
            1 => u32::from(Port::<u8>::new(port).read()),
            2 => u32::from(Port::<u16>::new(port).read()),
            _ => Port::<u32>::new(port).read(),
        }
    }
}

/// Writes `size` (1, 2 or 4) bytes of `value` to `port`.
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: as in `port_in`; the ports the hypervisor itself drives are refused before here.
    unsafe {
        match size {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value),
        }
    }
}
