//! The IOAPIC (memory mapped through a fixed uncached mapping): the hypervisor owns it, as Xen
//! does. Every pin starts masked; a pin is routed to its own vector (`DEVICE_VECTOR_BASE` +
//! GSI) on the boot CPU, with the trigger mode and polarity the owner of the device said
//! (`PHYSDEVOP_setup_gsi`), and unmasked only while a domain listens on it. A level-triggered
//! pin is masked when it fires and unmasked by its owner's EOI, so a device still asserting
//! its line cannot storm the CPU meanwhile.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::layout::FIXMAP_IOAPIC;

/// First vector of device interrupts: GSI g arrives on vector `DEVICE_VECTOR_BASE + g`.
pub const DEVICE_VECTOR_BASE: u64 = 0x30;
/// Pins this code drives at most (vectors 0x30..0x48 stay below the APIC timer's).
pub const MAX_PINS: u32 = 24;

const REG_SELECT: u64 = 0x00;
const REG_WINDOW: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIR: u32 = 0x10;
const RTE_ACTIVE_LOW: u32 = 1 << 13;
const RTE_LEVEL: u32 = 1 << 15;
const RTE_MASKED: u32 = 1 << 16;

/// Pins the IOAPIC has (0 until `init`).
static PINS: AtomicU32 = AtomicU32::new(0);
/// The local APIC id of the CPU device interrupts go to.
static DEST: AtomicU32 = AtomicU32::new(0);
/// Level-triggered pins, as a bit set: the interrupt path masks these when they fire.
static LEVEL: AtomicU64 = AtomicU64::new(0);

/// The select/window pair is one access at a time: a lock, taken with interrupts off so the
/// interrupt path (which masks pins) cannot deadlock against a hypercall holding it.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn read(reg: u32) -> u32 {
    // SAFETY: FIXMAP_IOAPIC maps the IOAPIC's page uncached (paging::build); the select and
    // window registers are 32-bit registers at offsets 0 and 0x10, accessed volatile; the
    // caller holds LOCK so no other access comes between the select and the window.
    unsafe {
        ((FIXMAP_IOAPIC + REG_SELECT) as *mut u32).write_volatile(reg);
        ((FIXMAP_IOAPIC + REG_WINDOW) as *const u32).read_volatile()
    }
}

fn write(reg: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        ((FIXMAP_IOAPIC + REG_SELECT) as *mut u32).write_volatile(reg);
        ((FIXMAP_IOAPIC + REG_WINDOW) as *mut u32).write_volatile(value);
    }
}

fn locked<R>(f: impl FnOnce() -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _g = LOCK.lock();
        f()
    })
}

/// Masks every pin and records how many there are and where interrupts go (`dest_apic_id`,
/// the boot CPU's local APIC). Returns the number of pins this code drives.
pub fn init(dest_apic_id: u32) -> u32 {
    DEST.store(dest_apic_id, Ordering::Relaxed);
    let pins = locked(|| {
        let version = read(REG_VERSION);
        // An absent IOAPIC reads all ones.
        if version == u32::MAX {
            return 0;
        }
        let pins = ((version >> 16) & 0xFF) + 1;
        for pin in 0..pins {
            write(REG_REDIR + 2 * pin, RTE_MASKED);
            write(REG_REDIR + 2 * pin + 1, 0);
        }
        pins.min(MAX_PINS)
    });
    PINS.store(pins, Ordering::Relaxed);
    pins
}

/// Pins the IOAPIC has (as many as this code drives).
pub fn pins() -> u32 {
    PINS.load(Ordering::Relaxed)
}

/// The GSI a device vector stands for.
pub fn gsi_of_vector(vector: u64) -> Option<u32> {
    let gsi = vector.checked_sub(DEVICE_VECTOR_BASE)?;
    (gsi < u64::from(pins())).then_some(gsi as u32)
}

/// Routes `gsi` to its vector with this trigger mode and polarity, unmasked.
pub fn unmask(gsi: u32, level: bool, active_low: bool) {
    if gsi >= pins() {
        return;
    }
    let bit = 1u64 << gsi;
    if level {
        LEVEL.fetch_or(bit, Ordering::Relaxed);
    } else {
        LEVEL.fetch_and(!bit, Ordering::Relaxed);
    }
    let mut low = (DEVICE_VECTOR_BASE as u32) + gsi;
    if level {
        low |= RTE_LEVEL;
    }
    if active_low {
        low |= RTE_ACTIVE_LOW;
    }
    let dest = DEST.load(Ordering::Relaxed) << 24;
    locked(|| {
        write(REG_REDIR + 2 * gsi + 1, dest);
        write(REG_REDIR + 2 * gsi, low);
    });
}

/// Masks `gsi` (its routing stays).
pub fn mask(gsi: u32) {
    if gsi >= pins() {
        return;
    }
    locked(|| {
        let low = read(REG_REDIR + 2 * gsi);
        write(REG_REDIR + 2 * gsi, low | RTE_MASKED);
    });
}

/// Whether `gsi` was routed level-triggered.
pub fn is_level(gsi: u32) -> bool {
    gsi < 64 && LEVEL.load(Ordering::Relaxed) & (1 << gsi) != 0
}
