//! The 16550 UART at COM1 (I/O port 0x3F8): the hypervisor's console, 115200 8N1, polled.
//! Reads are non-blocking so `console_io` read can drain what is there and return.

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_DATA_READY: u8 = 0x01;

/// Programs the UART. Idempotent.
pub fn init() {
    let regs = [(1, 0x00), (3, 0x80), (0, 0x01), (1, 0x00), (3, 0x03), (2, 0xC7), (4, 0x03)];
    for (offset, value) in regs {
        let mut port = Port::<u8>::new(COM1 + offset);
        // SAFETY: COM1's registers are owned by the hypervisor and have no memory side effects;
        // this sequence sets 115200 baud (divisor 1), 8N1, FIFOs on, DTR/RTS.
        unsafe { port.write(value) };
    }
}

fn line_status() -> u8 {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    // SAFETY: reading the line status register has no side effects.
    unsafe { lsr.read() }
}

/// Writes bytes, turning `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

fn put(byte: u8) {
    // A bounded wait: if the UART is gone we drop output rather than hang the hypervisor.
    for _ in 0..100_000 {
        if line_status() & LSR_THR_EMPTY != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: writing the transmit holding register sends one byte; no memory is touched.
    unsafe { data.write(byte) };
}

/// One received byte, if any is waiting.
pub fn try_read() -> Option<u8> {
    if line_status() & LSR_DATA_READY == 0 {
        return None;
    }
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: reading the receive buffer register pops one byte from the UART FIFO.
    Some(unsafe { data.read() })
}
