//! Event delivery to a vCPU: the upcall to the guest's event callback when its vcpu_info says
//! an event is pending and delivery is not masked.

use core::sync::atomic::Ordering;

use super::arch::entry::GuestRegs;
use super::domain::{self, Domain, VI_UPCALL_MASK, VI_UPCALL_PENDING, Vcpu, VcpuContext};
use super::traps;

/// On the way back to the guest: bounce to the event callback if an upcall is due.
pub fn deliver_upcall(v: &Vcpu, ctx: &mut VcpuContext, regs: &mut GuestRegs) {
    let pending = Domain::vcpu_info_byte(ctx, VI_UPCALL_PENDING).load(Ordering::Acquire);
    let masked = Domain::vcpu_info_byte(ctx, VI_UPCALL_MASK).load(Ordering::Acquire);
    if pending == 0 || masked != 0 || ctx.event_callback.address == 0 {
        return;
    }
    let Some(d) = domain::get(v.domain) else { return };
    let cb = ctx.event_callback.address;
    // The event callback always runs with further upcalls masked, as on Xen.
    traps::deliver(&d, ctx, regs, cb, true, None);
}
