//! Device interrupts as dom0 receives them on Xen: the hypervisor owns the IOAPIC, dom0 says
//! how a GSI signals (`PHYSDEVOP_setup_gsi`), maps it to a pirq (`PHYSDEVOP_map_pirq`, the
//! GSI's own number as Linux asks), binds an event channel to it (`EVTCHNOP_bind_pirq`), and
//! after handling a level-triggered one gives the EOI that unmasks the line (`PHYSDEVOP_eoi`,
//! when `PHYSDEVOP_irq_status_query` says it is needed).
//!
//! PCI INTx lines are shared (QEMU puts virtio-blk and virtio-net on one), so the line is
//! handled as a whole, as Linux does: when its port fires, the handler reads the interrupt
//! status register of every device on it (which lowers that device's part of the line),
//! records what each said, and only then gives the EOI, so the line is quiet when unmasked.
//! A driver waits for its own device ([`DeviceIrq::wait`]) by blocking in the hypervisor
//! (`SCHEDOP_block`) until its status is set or a deadline passes: no polling of the device.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use hypercall_abi::guest;
use hypercall_abi::physdev::XENIRQSTAT_NEEDS_EOI;
use hypercall_abi::{DomId, Errno, EvtchnPort};
use pv_guest::{events, time};

/// One GSI bound to an event channel of dom0, and the devices on it.
struct Line {
    gsi: u32,
    pirq: u32,
    needs_eoi: bool,
    /// Each device's interrupt status register (mapped) and what it last said.
    devices: Vec<(u64, Arc<AtomicU8>)>,
}

/// Lines by port.
static LINES: spin::Mutex<BTreeMap<u32, Line>> = spin::Mutex::new(BTreeMap::new());
/// Interrupts taken on all lines.
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// A device's share of an interrupt line.
#[derive(Clone, Debug)]
pub struct DeviceIrq {
    pub gsi: u32,
    pub pirq: u32,
    pub port: EvtchnPort,
    status: Arc<AtomicU8>,
}

/// The port's handler (in the upcall): every device on the line reads its status (and so
/// lowers its part of the line), then the EOI unmasks it.
fn fired(port: EvtchnPort) {
    let lines = LINES.lock();
    let Some(line) = lines.get(&port.0) else { return };
    TAKEN.fetch_add(1, Ordering::Relaxed);
    for (isr, status) in &line.devices {
        #[allow(unsafe_code)]
        // SAFETY: `isr` is the device's ISR status register, mapped uncached (dma::map_mmio)
        // for dom0's life; a one-byte volatile read is the access the device defines.
        let v = unsafe { (*isr as *const u8).read_volatile() };
        if v != 0 {
            status.fetch_or(v, Ordering::SeqCst);
        }
    }
    if line.needs_eoi
        && let Err(e) = guest::physdev_eoi(line.pirq)
    {
        log::warn!("irq: EOI of pirq {} failed: {e:?}", line.pirq);
    }
}

/// Interrupts taken on every line so far.
pub fn taken() -> u64 {
    TAKEN.load(Ordering::Relaxed)
}

/// Puts a device whose interrupt status register is mapped at `isr` on PCI interrupt line
/// `gsi` (level-triggered, active high: what QEMU's PC routes PCI INTx as, and its ACPI
/// tables say), binding the line to an event channel the first time.
pub fn attach(gsi: u32, isr: u64) -> Result<DeviceIrq, Errno> {
    let status = Arc::new(AtomicU8::new(0));
    {
        let mut lines = LINES.lock();
        if let Some((&port, line)) = lines.iter_mut().find(|(_, l)| l.gsi == gsi) {
            line.devices.push((isr, status.clone()));
            return Ok(DeviceIrq { gsi, pirq: line.pirq, port: EvtchnPort(port), status });
        }
    }
    match guest::physdev_setup_gsi(gsi, true, false) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let pirq = guest::physdev_map_pirq_gsi(DomId::SELF_, gsi, Some(gsi))?;
    let port = guest::evtchn_bind_pirq(pirq, 0)?;
    let needs_eoi = guest::physdev_irq_status_query(pirq)? & XENIRQSTAT_NEEDS_EOI != 0;
    LINES
        .lock()
        .insert(port.0, Line { gsi, pirq, needs_eoi, devices: alloc::vec![(isr, status.clone())] });
    events::on(port, fired);
    events::unmask(port)?;
    Ok(DeviceIrq { gsi, pirq, port, status })
}

impl DeviceIrq {
    /// Whether the device interrupted since the last call (and forgets that it did). A line
    /// whose port is already pending is handled first: an interrupt that arrived while dom0
    /// ran is taken (the line acknowledged and EOI'd) now rather than at dom0's next sleep.
    /// Only this port: other services' ports stay pending for the serving loop.
    pub fn take(&self) -> bool {
        if events::is_pending(self.port) {
            events::clear(self.port);
            fired(self.port);
        }
        self.status.swap(0, Ordering::SeqCst) != 0
    }

    /// Blocks until the device has interrupted (not taking it) or `deadline_ns` (system
    /// time) passes; true if it did.
    pub fn wait(&self, deadline_ns: u64) -> bool {
        loop {
            if self.status.load(Ordering::SeqCst) != 0 {
                return true;
            }
            if time::now_ns() >= deadline_ns {
                return false;
            }
            let _ = guest::set_timer_op(deadline_ns);
            events::wait();
        }
    }
}
