//! A domain's life across the subsystems: shutdown (by itself, by dom0, by a crash), the
//! deferred destruction that closes its event channels, drops its grant mappings, takes its
//! vCPUs out of the scheduler and returns its memory, and the notice dom0 gets of each change.
//! It sits above the subsystems it calls (scheduler, events, grants, memory); none of them
//! calls back up into it. Creating a domain is `build`.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

use hypercall_abi::DomId;
use hypercall_abi::event_channel::VIRQ_DOM_EXC;
use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use log::{error, info};

use crate::arch::power::{self, ExitCode};
use crate::domain::{self, DomState, Domain, Vcpu};
use crate::event::{self, interdomain};
use crate::grant::map;
use crate::mm::machine::{DirectPageMem, with_mm};
use crate::sched;

/// How many domains are dying and not yet destroyed: those are the domains in the table in
/// state `Dying` (a table scan finds them, so queueing one allocates nothing); the count lets
/// the way back to a guest skip the scan when there are none.
static PENDING_DESTROY: AtomicUsize = AtomicUsize::new(0);

/// Records that `d` shut itself down (or crashed) and stops its vCPUs. When dom0 goes, the
/// machine goes with it, with an exit status that says how; dom0 hears of any other domain's
/// change through VIRQ_DOM_EXC.
pub fn shutdown(d: &Arc<Domain>, reason: u32) {
    {
        let mut st = d.state.lock();
        if matches!(*st, DomState::Shutdown(_) | DomState::Dying) {
            return;
        }
        *st = DomState::Shutdown(reason);
    }
    let how = match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_CRASH => "crash",
        _ => "other",
    };
    info!("domain {} ({}) shut down: {how}", d.id.0, d.name);
    if d.id == DomId(0) {
        let code = match reason {
            SHUTDOWN_POWEROFF => ExitCode::Poweroff,
            SHUTDOWN_REBOOT => ExitCode::Reboot,
            _ => ExitCode::Crash,
        };
        info!("dom0 is gone: ending the machine ({how})");
        power::exit(code);
    }
    // dom0's toolstack decides what follows (destroy, restart, keep it for inspection), as
    // Xen's does: it hears of the change through VIRQ_DOM_EXC and reads the reason with
    // getdomaininfo.
    sched::domain_stopped(d);
    notify_dom0();
}

/// Crashes `d` because of something it did: logged, then shut down with reason crash. The
/// hypervisor and other domains carry on.
pub fn crash(d: &Arc<Domain>, why: core::fmt::Arguments<'_>) {
    error!("domain {} ({}) crashed: {why}", d.id.0, d.name);
    shutdown(d, SHUTDOWN_CRASH);
}

/// Tells dom0 a domain changed state (VIRQ_DOM_EXC), as Xen does.
pub fn notify_dom0() {
    if let Some(d0) = domain::get(DomId(0)) {
        event::send_virq(&d0, 0, VIRQ_DOM_EXC);
    }
}

/// Queues `d` for destruction: it happens once no CPU runs it (see [`destroy_pending`]).
pub fn request_destroy(d: &Arc<Domain>) {
    {
        let mut st = d.state.lock();
        if *st == DomState::Dying {
            return;
        }
        *st = DomState::Dying;
    }
    sched::domain_stopped(d);
    PENDING_DESTROY.fetch_add(1, Ordering::AcqRel);
}

/// Destroys dying domains whose vCPUs are not current on this CPU. Called on the way back to
/// a guest after the scheduler switched away from them.
pub fn destroy_pending(current: Option<&Arc<Vcpu>>) {
    while PENDING_DESTROY.load(Ordering::Acquire) != 0 {
        let next = domain::find(|d| {
            d.state() == DomState::Dying && current.is_none_or(|c| c.domain != d.id)
        });
        match next {
            Some(d) => {
                PENDING_DESTROY.fetch_sub(1, Ordering::AcqRel);
                destroy(&d);
            }
            None => return,
        }
    }
}

/// Tears a domain down: its event channels are closed (peers see their ports unbound), its
/// vCPUs leave the scheduler, and every frame it owns goes back, except those another domain
/// still maps, which stay until that domain lets go.
fn destroy(d: &Arc<Domain>) {
    interdomain::close_all(d);
    crate::event::irq::release(d.id);
    map::domain_destroyed(d);
    for v in &d.vcpus {
        sched::remove_vcpu(v);
    }
    let before = with_mm(|mm| mm.free_frames());
    with_mm(|mm| {
        mm.domain_mark_dying(d.id);
        // What each vCPU holds: its base tables, its GDT's frames, and a page it registered for
        // its vcpu_info.
        for v in &d.vcpus {
            let ctx = v.ctx.lock();
            for root in [ctx.guest_table, ctx.guest_table_user] {
                if root.0 != 0 {
                    mm.put_page_and_type(&mut DirectPageMem, root);
                }
            }
            for &f in ctx.gdt() {
                mm.put_page_and_type(&mut DirectPageMem, f);
            }
            let (info, _) = v.vcpu_info();
            if info != d.shared_info {
                mm.put_page_and_type(&mut DirectPageMem, info);
            }
        }
        mm.domain_relinquish(&mut DirectPageMem, d.id, &[]);
    });
    let after = with_mm(|mm| mm.free_frames());
    domain::remove(d.id);
    info!("domain {} ({}) destroyed: {} pages returned", d.id.0, d.name, after - before);
    domain::reap();
    notify_dom0();
}
