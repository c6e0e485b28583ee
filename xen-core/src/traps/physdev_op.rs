//! `physdev_op`: the virtual I/O privilege level a domain's kernel runs its port I/O with, and
//! physical IRQs. Any domain may set its IOPL, as on Xen: with it, port I/O is emulated
//! (`emulate`), reaching real ports only for dom0 and reading all ones (writes dropped)
//! elsewhere. Physical IRQs are Xen's GSI pirqs: the hardware domain says how a GSI signals
//! (`setup_gsi`), a privileged domain maps a GSI to a pirq (`map_pirq`, `unmap_pirq`), the
//! owner binds it to an event channel (`EVTCHNOP_bind_pirq`), asks whether it needs an EOI
//! (`irq_status_query`) and gives one (`eoi`). Another domain gets Xen's answers: `EPERM` for
//! mapping and setup, `EINVAL` for an EOI of a pirq it does not have. MSI is not offered:
//! `map_pirq` of an MSI type is `EOPNOTSUPP`.

use hypercall_abi::Errno;
use hypercall_abi::physdev::{
    MAP_PIRQ_TYPE_GSI, PHYSDEVOP_EOI, PHYSDEVOP_IRQ_STATUS_QUERY, PHYSDEVOP_MAP_PIRQ,
    PHYSDEVOP_SET_IOPL, PHYSDEVOP_SETUP_GSI, PHYSDEVOP_UNMAP_PIRQ, PhysdevEoi,
    PhysdevIrqStatusQuery, PhysdevMapPirq, PhysdevSetIopl, PhysdevSetupGsi, PhysdevUnmapPirq,
    XENIRQSTAT_NEEDS_EOI,
};

use crate::domain::target_domain;
use crate::event::irq;
use crate::event::pirq::Trigger;
use crate::hypercall::{Hc, HcResult, copy_in, copy_out};

/// A pirq number from the guest: negative ones are out of range.
fn pirq_arg(v: i32) -> Result<u32, Errno> {
    u32::try_from(v).map_err(|_| Errno::EINVAL)
}

pub fn physdev_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    match a[0] as u32 {
        PHYSDEVOP_SET_IOPL => {
            let op: PhysdevSetIopl = copy_in(a[1])?;
            if op.iopl > 3 {
                return Err(Errno::EINVAL);
            }
            hc.ctx.iopl = op.iopl as u8;
            Ok(Some(0))
        }
        PHYSDEVOP_SETUP_GSI => {
            let op: PhysdevSetupGsi = copy_in(a[1])?;
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            let gsi = pirq_arg(op.gsi)?;
            // ACPI's encoding, as Linux passes it: triggering 1 = level, polarity 1 = low.
            irq::setup_gsi(
                gsi,
                Trigger { level: op.triggering != 0, active_low: op.polarity != 0 },
            )?;
            Ok(Some(0))
        }
        PHYSDEVOP_MAP_PIRQ => {
            let mut op: PhysdevMapPirq = copy_in(a[1])?;
            let d = target_domain(hc.dom, op.domid)?;
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            if op.kind != MAP_PIRQ_TYPE_GSI {
                return Err(Errno::EOPNOTSUPP);
            }
            let gsi = pirq_arg(op.index)?;
            let want = if op.pirq < 0 { None } else { Some(op.pirq as u32) };
            op.pirq = irq::map(d.id, gsi, want)? as i32;
            copy_out(a[1], &op)?;
            Ok(Some(0))
        }
        PHYSDEVOP_UNMAP_PIRQ => {
            let op: PhysdevUnmapPirq = copy_in(a[1])?;
            let d = target_domain(hc.dom, op.domid)?;
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            irq::unmap(d.id, pirq_arg(op.pirq)?)?;
            Ok(Some(0))
        }
        PHYSDEVOP_EOI => {
            let op: PhysdevEoi = copy_in(a[1])?;
            irq::eoi(hc.dom.id, op.irq)?;
            Ok(Some(0))
        }
        PHYSDEVOP_IRQ_STATUS_QUERY => {
            let mut op: PhysdevIrqStatusQuery = copy_in(a[1])?;
            op.flags = if irq::needs_eoi(hc.dom.id, op.irq)? { XENIRQSTAT_NEEDS_EOI } else { 0 };
            copy_out(a[1], &op)?;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
