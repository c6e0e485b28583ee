//! The domUs dom0 looks after. The hypervisor builds the boot domUs (`domu=` on its command
//! line) paused, and raises `VIRQ_DOM_EXC` whenever a domain appears or goes. On each, dom0
//! lists the live domUs, adopts the new ones into its services and unpauses them (everything
//! they need is connected by then), and forgets the ones that are gone. With
//! `wait_for=<domid>` on dom0's command line, the others (CPU hogs) are destroyed once that
//! one is gone.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::DomId;
use hypercall_abi::domctl::{GetDomainInfo, XEN_DOMINF_DYING};
use hypercall_abi::event_channel::VIRQ_DOM_EXC;
use hypercall_abi::guest;
use pv_guest::events;

use super::ctl;
use crate::service::Services;

/// `VIRQ_DOM_EXC` events seen so far.
static DOM_EXC: AtomicU64 = AtomicU64::new(0);

/// Binds `VIRQ_DOM_EXC`, so [`BootDomains::update`] knows when to look again.
pub fn watch() {
    if let Ok(port) = guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(VIRQ_DOM_EXC), 0) {
        events::on(port, |_| {
            DOM_EXC.fetch_add(1, Ordering::SeqCst);
        });
        let _ = events::unmask(port);
    }
}

/// The domUs alive now (not dying).
pub fn live_domus() -> Vec<GetDomainInfo> {
    ctl::domains()
        .into_iter()
        .filter(|d| d.domain != DomId(0) && d.flags & XEN_DOMINF_DYING == 0)
        .collect()
}

/// A domain's name, which the hypervisor passes in getdomaininfo's handle (`d<id>` if none).
fn domain_name(d: &GetDomainInfo) -> String {
    let end = d.handle.iter().position(|&b| b == 0).unwrap_or(d.handle.len());
    match core::str::from_utf8(&d.handle[..end]) {
        Ok(n) if !n.is_empty() => n.into(),
        _ => alloc::format!("d{}", d.domain.0),
    }
}

/// Keeps dom0's services in step with the domains that exist.
pub struct BootDomains {
    seen_exc: u64,
    wait_for: Option<u16>,
}

impl BootDomains {
    /// `wait_for`: once that domain is gone, destroy the rest.
    pub fn new(wait_for: Option<u16>) -> Self {
        BootDomains { seen_exc: u64::MAX, wait_for }
    }

    /// If a domain appeared or went since the last call (and on the first), adopts the new
    /// domUs, forgets the gone ones, and returns how many are alive; None if nothing changed.
    pub fn update(&mut self, svc: &mut Services) -> Option<usize> {
        let exc = DOM_EXC.load(Ordering::SeqCst);
        if exc == self.seen_exc {
            return None;
        }
        self.seen_exc = exc;
        let live = live_domus();
        for d in &live {
            if !svc.serves(d.domain) {
                let name = domain_name(d);
                svc.adopt(d.domain, &name);
                // Everything it needs is connected: let it run.
                let _ = ctl::unpause(d.domain);
            }
        }
        let gone: Vec<u16> = svc
            .guest_ids()
            .into_iter()
            .filter(|id| !live.iter().any(|d| d.domain.0 == *id))
            .collect();
        for id in gone {
            svc.forget(DomId(id));
        }
        if let Some(id) = self.wait_for
            && !live.iter().any(|d| d.domain.0 == id)
        {
            for d in &live {
                let _ = ctl::destroy(d.domain);
            }
        }
        Some(live.len())
    }
}
