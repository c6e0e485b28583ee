//! Physical IRQs as a domain sees them (Xen's pirqs), hardware-free and host-tested: which
//! domain each of the machine's GSIs (IOAPIC pins) is mapped to and under which pirq number
//! (`PHYSDEVOP_map_pirq`), which event channel it is bound to (`EVTCHNOP_bind_pirq`), its
//! trigger mode and polarity (`PHYSDEVOP_setup_gsi`), and whether a level-triggered one is in
//! flight: fired, masked at the IOAPIC, and waiting for the owner's `PHYSDEVOP_eoi`.
//!
//! Every operation answers what the hardware must do (which pin to mask or unmask, which port
//! to raise); the caller (`event::irq`) does it. A GSI has at most one owner. Pirq numbers
//! and GSIs are guest input: both are range checked before use.

use hypercall_abi::{DomId, Errno, EvtchnPort};

/// GSIs this table can route: the first IOAPIC's pins (24 on the PC's, QEMU's included).
pub const NR_GSIS: usize = 24;
/// Pirq numbers a domain may use (Xen's dom0 default `nr_pirqs` is larger; only GSIs exist
/// here, so this bounds the numbers a domain may pick for them).
pub const NR_PIRQS: u32 = 256;
/// GSIs below this are ISA interrupts: edge-triggered, active high, until told otherwise.
const NR_ISA_IRQS: u32 = 16;

/// How a GSI signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub level: bool,
    pub active_low: bool,
}

impl Trigger {
    /// What a GSI is before `PHYSDEVOP_setup_gsi`: ISA interrupts edge/high, PCI ones
    /// level/low, as the PC platform (and Xen) assume.
    pub fn default_for(gsi: u32) -> Self {
        if gsi < NR_ISA_IRQS {
            Trigger { level: false, active_low: false }
        } else {
            Trigger { level: true, active_low: true }
        }
    }
}

/// One GSI's routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Line {
    owner: Option<(DomId, u32)>,
    /// The owner's event channel and the vCPU it notifies.
    port: Option<(EvtchnPort, u32)>,
    trigger: Trigger,
    /// Set up explicitly (`PHYSDEVOP_setup_gsi`).
    configured: bool,
    /// Fired and masked, waiting for the owner's EOI (level-triggered only).
    in_flight: bool,
}

/// What the hardware must do after an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinAction {
    None,
    /// Program the pin with this trigger and leave it unmasked.
    Unmask(u32, Trigger),
    Mask(u32),
}

/// Where a fired GSI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub dom: DomId,
    pub port: EvtchnPort,
    pub vcpu: u32,
}

/// The machine's GSIs.
#[derive(Debug)]
pub struct PirqTable {
    lines: [Line; NR_GSIS],
    /// Pins the IOAPIC really has (at most `NR_GSIS`).
    nr_pins: u32,
}

impl PirqTable {
    pub const fn new(nr_pins: u32) -> Self {
        const FREE: Line = Line {
            owner: None,
            port: None,
            trigger: Trigger { level: false, active_low: false },
            configured: false,
            in_flight: false,
        };
        let nr_pins = if nr_pins as usize > NR_GSIS { NR_GSIS as u32 } else { nr_pins };
        PirqTable { lines: [FREE; NR_GSIS], nr_pins }
    }

    fn line(&mut self, gsi: u32) -> Result<&mut Line, Errno> {
        if gsi >= self.nr_pins {
            return Err(Errno::EINVAL);
        }
        Ok(&mut self.lines[gsi as usize])
    }

    /// The GSI `dom` maps under `pirq`.
    fn gsi_of(&self, dom: DomId, pirq: u32) -> Option<u32> {
        self.lines[..self.nr_pins as usize]
            .iter()
            .position(|l| l.owner == Some((dom, pirq)))
            .map(|g| g as u32)
    }

    /// `PHYSDEVOP_setup_gsi`: the trigger mode and polarity the platform (ACPI) says. Once per
    /// GSI (`EEXIST` after, which Linux expects and ignores).
    pub fn setup(&mut self, gsi: u32, trigger: Trigger) -> Result<(), Errno> {
        let l = self.line(gsi)?;
        if l.configured {
            return Err(Errno::EEXIST);
        }
        l.configured = true;
        l.trigger = trigger;
        Ok(())
    }

    /// `PHYSDEVOP_map_pirq` of type GSI: maps `gsi` to `dom`, under `pirq` (or, if `None`, the
    /// GSI's own number when free, as Xen gives dom0). Mapping the same pair again is a no-op.
    pub fn map(&mut self, dom: DomId, gsi: u32, pirq: Option<u32>) -> Result<u32, Errno> {
        if gsi >= self.nr_pins {
            return Err(Errno::EINVAL);
        }
        let pirq = match pirq {
            Some(p) if p >= NR_PIRQS => return Err(Errno::EINVAL),
            Some(p) => p,
            None => match self.lines[gsi as usize].owner {
                Some((d, p)) if d == dom => p,
                _ if self.gsi_of(dom, gsi).is_none() => gsi,
                _ => (NR_GSIS as u32..NR_PIRQS)
                    .find(|&p| self.gsi_of(dom, p).is_none())
                    .ok_or(Errno::ENOSPC)?,
            },
        };
        let l = self.lines[gsi as usize];
        match (l.owner, self.gsi_of(dom, pirq)) {
            (Some(o), _) if o == (dom, pirq) => return Ok(pirq),
            (Some(_), _) => return Err(Errno::EBUSY),
            (None, Some(_)) => return Err(Errno::EBUSY),
            (None, None) => {}
        }
        let l = &mut self.lines[gsi as usize];
        if !l.configured {
            l.trigger = Trigger::default_for(gsi);
        }
        l.owner = Some((dom, pirq));
        Ok(pirq)
    }

    /// `PHYSDEVOP_unmap_pirq`. A pirq still bound to an event channel stays (`EBUSY`): close
    /// the channel first.
    pub fn unmap(&mut self, dom: DomId, pirq: u32) -> Result<(), Errno> {
        let gsi = self.gsi_of(dom, pirq).ok_or(Errno::EINVAL)?;
        let l = &mut self.lines[gsi as usize];
        if l.port.is_some() {
            return Err(Errno::EBUSY);
        }
        l.owner = None;
        l.in_flight = false;
        Ok(())
    }

    /// `EVTCHNOP_bind_pirq`: events of `pirq` go to `port` of its owner from now on, and the
    /// pin is unmasked. `EPERM` for a pirq the domain was not given, `EEXIST` if bound.
    pub fn bind(
        &mut self,
        dom: DomId,
        pirq: u32,
        port: EvtchnPort,
        vcpu: u32,
    ) -> Result<PinAction, Errno> {
        if pirq >= NR_PIRQS {
            return Err(Errno::EINVAL);
        }
        let gsi = self.gsi_of(dom, pirq).ok_or(Errno::EPERM)?;
        let l = &mut self.lines[gsi as usize];
        if l.port.is_some() {
            return Err(Errno::EEXIST);
        }
        l.port = Some((port, vcpu));
        l.in_flight = false;
        Ok(PinAction::Unmask(gsi, l.trigger))
    }

    /// Whether `pirq` of `dom` is mapped and free to bind (checked before a port is allocated).
    pub fn can_bind(&self, dom: DomId, pirq: u32) -> Result<(), Errno> {
        if pirq >= NR_PIRQS {
            return Err(Errno::EINVAL);
        }
        let gsi = self.gsi_of(dom, pirq).ok_or(Errno::EPERM)?;
        if self.lines[gsi as usize].port.is_some() {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    /// The event channel bound to `pirq` is closed: the pin is masked again.
    pub fn unbind(&mut self, dom: DomId, pirq: u32) -> PinAction {
        let Some(gsi) = self.gsi_of(dom, pirq) else { return PinAction::None };
        let l = &mut self.lines[gsi as usize];
        l.port = None;
        l.in_flight = false;
        PinAction::Mask(gsi)
    }

    /// The vCPU a bound pirq's port notifies changed (`EVTCHNOP_bind_vcpu`).
    pub fn set_vcpu(&mut self, dom: DomId, pirq: u32, vcpu: u32) {
        if let Some(gsi) = self.gsi_of(dom, pirq)
            && let Some((_, v)) = &mut self.lines[gsi as usize].port
        {
            *v = vcpu;
        }
    }

    /// `gsi` fired (a level-triggered one arrives masked): where the event goes, or `None`
    /// when nobody listens (then the pin must stay masked).
    pub fn fire(&mut self, gsi: u32) -> Option<Delivery> {
        let l = self.line(gsi).ok()?;
        let ((dom, _), (port, vcpu)) = (l.owner?, l.port?);
        if l.trigger.level {
            l.in_flight = true;
        }
        Some(Delivery { dom, port, vcpu })
    }

    /// Whether `gsi` is level-triggered (masked until EOI when it fires).
    pub fn is_level(&self, gsi: u32) -> bool {
        self.lines.get(gsi as usize).is_some_and(|l| l.trigger.level)
    }

    /// `PHYSDEVOP_eoi`: the owner handled its interrupt; an in-flight pin is unmasked.
    /// `EINVAL` for a pirq the domain does not have, as on Xen.
    pub fn eoi(&mut self, dom: DomId, pirq: u32) -> Result<PinAction, Errno> {
        let gsi = self.gsi_of(dom, pirq).ok_or(Errno::EINVAL)?;
        let l = &mut self.lines[gsi as usize];
        if !l.in_flight || l.port.is_none() {
            return Ok(PinAction::None);
        }
        l.in_flight = false;
        Ok(PinAction::Unmask(gsi, l.trigger))
    }

    /// `PHYSDEVOP_irq_status_query`: whether the domain must EOI `pirq` after handling it.
    pub fn needs_eoi(&self, dom: DomId, pirq: u32) -> Result<bool, Errno> {
        if pirq >= NR_PIRQS {
            return Err(Errno::EINVAL);
        }
        Ok(self.gsi_of(dom, pirq).is_some_and(|g| self.lines[g as usize].trigger.level))
    }

    /// A domain is gone: its GSIs are free again. Returns the pins to mask, as a bit set.
    pub fn release(&mut self, dom: DomId) -> u64 {
        let mut mask = 0u64;
        for (gsi, l) in self.lines.iter_mut().enumerate() {
            if l.owner.is_some_and(|(d, _)| d == dom) {
                *l = Line { owner: None, port: None, in_flight: false, ..*l };
                mask |= 1 << gsi;
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D0: DomId = DomId(0);
    const D1: DomId = DomId(1);
    const LEVEL_HIGH: Trigger = Trigger { level: true, active_low: false };

    #[test]
    fn map_bind_fire_eoi() {
        let mut t = PirqTable::new(24);
        t.setup(11, LEVEL_HIGH).unwrap();
        assert_eq!(t.setup(11, LEVEL_HIGH), Err(Errno::EEXIST));
        assert_eq!(t.map(D0, 11, None), Ok(11), "dom0 gets the GSI's own number");
        assert_eq!(t.map(D0, 11, Some(11)), Ok(11), "mapping again is a no-op");
        assert_eq!(t.fire(11), None, "nobody bound: stays masked");
        assert!(t.needs_eoi(D0, 11).unwrap());
        let p = EvtchnPort(5);
        assert_eq!(t.bind(D0, 11, p, 0), Ok(PinAction::Unmask(11, LEVEL_HIGH)));
        assert_eq!(t.bind(D0, 11, p, 0), Err(Errno::EEXIST));
        assert_eq!(t.eoi(D0, 11), Ok(PinAction::None), "nothing in flight");
        assert_eq!(t.fire(11), Some(Delivery { dom: D0, port: p, vcpu: 0 }));
        assert_eq!(t.eoi(D0, 11), Ok(PinAction::Unmask(11, LEVEL_HIGH)));
        assert_eq!(t.eoi(D0, 11), Ok(PinAction::None), "one EOI per interrupt");
        assert_eq!(t.unmap(D0, 11), Err(Errno::EBUSY), "still bound");
        assert_eq!(t.unbind(D0, 11), PinAction::Mask(11));
        t.unmap(D0, 11).unwrap();
        assert_eq!(t.eoi(D0, 11), Err(Errno::EINVAL));
    }

    #[test]
    fn edge_lines_need_no_eoi() {
        let mut t = PirqTable::new(24);
        assert_eq!(t.map(D0, 4, None), Ok(4));
        assert!(!t.needs_eoi(D0, 4).unwrap());
        t.bind(D0, 4, EvtchnPort(3), 0).unwrap();
        t.fire(4).unwrap();
        assert_eq!(t.eoi(D0, 4), Ok(PinAction::None));
        // A PCI GSI never set up defaults to level, active low.
        t.map(D0, 20, None).unwrap();
        assert!(t.needs_eoi(D0, 20).unwrap());
    }

    #[test]
    fn owners_and_hostile_numbers() {
        let mut t = PirqTable::new(24);
        t.map(D0, 10, Some(40)).unwrap();
        assert_eq!(t.map(D1, 10, None), Err(Errno::EBUSY), "one owner per GSI");
        assert_eq!(t.map(D0, 9, Some(40)), Err(Errno::EBUSY), "one GSI per pirq");
        assert_eq!(t.map(D0, 24, None), Err(Errno::EINVAL));
        assert_eq!(t.map(D0, u32::MAX, None), Err(Errno::EINVAL));
        assert_eq!(t.map(D0, 9, Some(NR_PIRQS)), Err(Errno::EINVAL));
        assert_eq!(t.setup(99, LEVEL_HIGH), Err(Errno::EINVAL));
        // Another domain cannot bind, EOI or unmap what it was not given.
        assert_eq!(t.bind(D1, 40, EvtchnPort(1), 0), Err(Errno::EPERM));
        assert_eq!(t.can_bind(D1, 40), Err(Errno::EPERM));
        assert_eq!(t.bind(D1, NR_PIRQS, EvtchnPort(1), 0), Err(Errno::EINVAL));
        assert_eq!(t.eoi(D1, 40), Err(Errno::EINVAL));
        assert_eq!(t.unmap(D1, 40), Err(Errno::EINVAL));
        assert!(!t.needs_eoi(D1, 40).unwrap());
        assert_eq!(t.unbind(D1, 40), PinAction::None);
        // When no pirq numbers are left, allocation fails cleanly.
        assert_eq!(t.map(D0, 9, None), Ok(9));
        assert_eq!(t.fire(99), None);
    }

    #[test]
    fn a_small_ioapic_bounds_the_gsis_and_release_frees_them() {
        let mut t = PirqTable::new(8);
        assert_eq!(t.map(D0, 8, None), Err(Errno::EINVAL));
        t.map(D1, 3, None).unwrap();
        t.map(D1, 5, None).unwrap();
        t.bind(D1, 5, EvtchnPort(2), 0).unwrap();
        t.map(D0, 6, None).unwrap();
        assert_eq!(t.release(D1), (1 << 3) | (1 << 5));
        assert_eq!(t.map(D0, 5, None), Ok(5), "free again");
        assert_eq!(t.fire(3), None);
    }
}
