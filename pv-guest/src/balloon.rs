//! The balloon driver: the domain's memory follows the target the toolstack writes at
//! `memory/target` (KiB) in its XenStore home, as Linux's balloon does. Below the current
//! size, frames are given back to the hypervisor from the top of the pseudo-physical space
//! (`XENMEM_decrease_reservation`) and their P2M entries made invalid; above it, those frames
//! are taken again (`XENMEM_populate_physmap`, as Linux's balloon asks for them) and recorded
//! in the P2M. Only frames past the boot mapping are ballooned: this kernel never maps them,
//! so nothing refers to a frame it gives back. The target is clamped to what can move.

use alloc::vec::Vec;

use hypercall_abi::{Gfn, guest};
use spin::Mutex;

use crate::memory::{pages, shared};
use crate::{println, start_info};

/// What the P2M holds for a frame given back (Xen's INVALID_P2M_ENTRY).
const INVALID_P2M: u64 = !0;

/// The pseudo-physical frames given back, highest first (a stack: the last given back is the
/// first taken again).
static OUT: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Pages the domain has now (as built, less those given back).
pub fn current_pages() -> u64 {
    start_info().nr_pages - OUT.lock().len() as u64
}

/// Moves toward `target_kib`; returns the pages the domain has afterwards.
pub fn set_target(target_kib: u64) -> u64 {
    let si = start_info();
    let floor = (pages::boot_region_end(si) - crate::arch::VIRT_BASE).div_ceil(4096);
    let target = (target_kib / 4).clamp(floor.min(si.nr_pages), si.nr_pages);
    let mut out = OUT.lock();
    let mut have = si.nr_pages - out.len() as u64;
    while have > target {
        let pfn = have - 1;
        let Some(mfn) = shared::p2m_entry(si, pfn) else { break };
        #[allow(unsafe_code)]
        // SAFETY: `pfn` lies past the boot mapping: this kernel never mapped or granted it,
        // so nothing refers to the frame it gives back.
        let given = unsafe { guest::decrease_reservation(&[Gfn(mfn)], 0) };
        if given != Ok(1) {
            println!(
                "balloon: the hypervisor kept pfn {pfn:#x} ({given:?}); stopping at {have} pages"
            );
            break;
        }
        shared::set_p2m_entry(si, pfn, INVALID_P2M);
        out.push(pfn);
        have -= 1;
    }
    while have < target {
        let Some(&pfn) = out.last() else { break };
        let mut slot = [pfn];
        if guest::populate_physmap(&mut slot, 0) != Ok(1) {
            println!("balloon: no frame for pfn {pfn:#x}; staying at {have} pages");
            break;
        }
        shared::set_p2m_entry(si, pfn, slot[0]);
        out.pop();
        have += 1;
    }
    have
}
