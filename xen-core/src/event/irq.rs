//! The machine's physical IRQs on the hardware: the one [`PirqTable`] (behind a lock), the
//! IOAPIC pins it says to mask and unmask, and raising the owner's event channel when a GSI
//! fires. The `physdev_op` and `event_channel_op` handlers call these; so does the interrupt
//! path (`traps::entry`) and domain teardown.

use hypercall_abi::{DomId, Errno, EvtchnPort};

use super::pirq::{PinAction, PirqTable, Trigger};
use crate::arch::ioapic;
use crate::domain;

static TABLE: spin::Mutex<PirqTable> = spin::Mutex::new(PirqTable::new(0));

/// Takes the IOAPIC's pins (masked) into the table. Called once at boot.
pub fn init(pins: u32) {
    *TABLE.lock() = PirqTable::new(pins);
}

fn apply(a: PinAction) {
    match a {
        PinAction::None => {}
        PinAction::Unmask(gsi, t) => ioapic::unmask(gsi, t.level, t.active_low),
        PinAction::Mask(gsi) => ioapic::mask(gsi),
    }
}

fn with<R>(f: impl FnOnce(&mut PirqTable) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| f(&mut TABLE.lock()))
}

/// `PHYSDEVOP_setup_gsi`.
pub fn setup_gsi(gsi: u32, trigger: Trigger) -> Result<(), Errno> {
    with(|t| t.setup(gsi, trigger))
}

/// `PHYSDEVOP_map_pirq` (type GSI).
pub fn map(dom: DomId, gsi: u32, pirq: Option<u32>) -> Result<u32, Errno> {
    with(|t| t.map(dom, gsi, pirq))
}

/// `PHYSDEVOP_unmap_pirq`.
pub fn unmap(dom: DomId, pirq: u32) -> Result<(), Errno> {
    with(|t| t.unmap(dom, pirq))
}

/// Whether `pirq` may be bound by `dom` now.
pub fn can_bind(dom: DomId, pirq: u32) -> Result<(), Errno> {
    with(|t| t.can_bind(dom, pirq))
}

/// `EVTCHNOP_bind_pirq` once the port exists: route and unmask the pin.
pub fn bind(dom: DomId, pirq: u32, port: EvtchnPort) -> Result<(), Errno> {
    let a = with(|t| t.bind(dom, pirq, port, 0))?;
    apply(a);
    Ok(())
}

/// The port bound to `pirq` was closed.
pub fn unbind(dom: DomId, pirq: u32) {
    apply(with(|t| t.unbind(dom, pirq)));
}

/// The port bound to `pirq` now notifies `vcpu`.
pub fn set_vcpu(dom: DomId, pirq: u32, vcpu: u32) {
    with(|t| t.set_vcpu(dom, pirq, vcpu));
}

/// `PHYSDEVOP_eoi`.
pub fn eoi(dom: DomId, pirq: u32) -> Result<(), Errno> {
    apply(with(|t| t.eoi(dom, pirq))?);
    Ok(())
}

/// `PHYSDEVOP_irq_status_query`: whether `pirq` needs an EOI.
pub fn needs_eoi(dom: DomId, pirq: u32) -> Result<bool, Errno> {
    with(|t| t.needs_eoi(dom, pirq))
}

/// A domain is gone: its GSIs are masked and free.
pub fn release(dom: DomId) {
    let mask = with(|t| t.release(dom));
    for gsi in 0..64 {
        if mask & (1 << gsi) != 0 {
            ioapic::mask(gsi);
        }
    }
}

/// GSI `gsi` fired (interrupt context): raise its owner's port, or leave the pin masked
/// when nobody listens any more.
pub fn fire(gsi: u32) {
    let Some(to) = with(|t| t.fire(gsi)) else {
        ioapic::mask(gsi);
        return;
    };
    if let Some(d) = domain::get(to.dom) {
        super::set_pending(&d, to.port, to.vcpu);
    }
}
