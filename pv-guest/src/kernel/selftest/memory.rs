//! Memory reservations from a guest's side (`XENMEM_*`): ballooning down and back up, the
//! reservation following, frames given back twice refused, the M2P updated for populated
//! frames, and nothing beyond the domain's ceiling. [`reservation`] is the raw operation, also
//! used by the hostile guest.

use alloc::string::String;

use hypercall_abi::{Errno, guest};

use super::run::Test::{self, Check};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[("memory", Check(memory))];

/// One XENMEM reservation op (`increase`/`decrease_reservation`, `populate_physmap`) over
/// `extents`: frame numbers given, or pseudo-physical frames to fill; returns how many extents
/// were done.
pub fn reservation(
    cmd: u32,
    extents: &mut [u64],
    extent_order: u32,
    domid: hypercall_abi::DomId,
) -> Result<u64, Errno> {
    let mut r = hypercall_abi::memory::XenMemoryReservation {
        extent_start: hypercall_abi::GuestHandle::from_raw(extents.as_mut_ptr() as u64),
        nr_extents: extents.len() as u64,
        extent_order,
        mem_flags: 0,
        domid,
        _pad: [0; 6],
    };
    #[allow(unsafe_code)]
    // SAFETY: `r` is the reservation struct and names `extents`, live for the call. A frame
    // given back stays alive while anything still maps it (the hypervisor's reference rules),
    // and frames gained are not mapped until the caller maps them.
    unsafe {
        guest::memory_op(cmd, &mut r)
    }
}

/// Ballooning: give pages back, get them back, and the reservation follows.
pub fn memory() -> Result<(), String> {
    use hypercall_abi::memory::*;
    use hypercall_abi::mmu::UVMF_INVLPG;
    use hypercall_abi::{DomId, VAddr};
    let si = pv_guest::start_info();
    let me = DomId::SELF_;
    let current =
        |what: &str| guest::current_reservation(me).map_err(|e| alloc::format!("{what}: {e:?}"));
    let start = current("current_reservation")?;
    if start != si.nr_pages {
        return Err(alloc::format!("current_reservation {start} != nr_pages {}", si.nr_pages));
    }
    let max = guest::maximum_reservation(me).map_err(|e| alloc::format!("max: {e:?}"))?;
    if max < start {
        return Err(alloc::format!("maximum_reservation {max} < current {start}"));
    }
    let mut map = [E820Entry::default(); 2];
    let n = guest::memory_map(&mut map).map_err(|e| alloc::format!("memory_map: {e:?}"))?;
    let (size, kind) = (map[0].size, map[0].kind);
    if n != 1 || size != si.nr_pages * 4096 || kind != E820_RAM {
        return Err(alloc::format!("memory_map {n} entries, first {size:#x} type {kind}"));
    }
    let mp = guest::machphys_mapping().map_err(|e| alloc::format!("machphys_mapping: {e:?}"))?;
    if mp.v_start != hypercall_abi::arch::MACH2PHYS_VIRT_START {
        return Err(alloc::format!("M2P at {:#x}", mp.v_start));
    }
    // Balloon down 16 pages: unmap each, then give the frames back.
    let pages: alloc::vec::Vec<pv_guest::memory::pages::OwnPage> =
        (0..16).map_while(|_| pv_guest::memory::pages::alloc_page()).collect();
    if pages.len() < 16 {
        // The reservation below names 16 extents: never pass fewer.
        return Err(alloc::format!("only {} free pages for the balloon test", pages.len()));
    }
    let mut frames: alloc::vec::Vec<u64> = pages.iter().map(|p| p.mfn().0).collect();
    for p in &pages {
        // Something to leak, if the frames came back to anyone unzeroed.
        for w in 0..512 {
            p.shared().u64_at(w * 8).store(!0, core::sync::atomic::Ordering::Relaxed);
        }
        #[allow(unsafe_code)]
        // SAFETY: the page is this kernel's and unused; unmapping it loses nothing.
        unsafe {
            guest::update_va_mapping(VAddr(p.va()), 0, hypercall_abi::mmu::Uvmf(UVMF_INVLPG))
        }
        .map_err(|e| alloc::format!("unmap: {e:?}"))?;
    }
    let gone = reservation(XENMEM_DECREASE_RESERVATION, &mut frames, 0, me)
        .map_err(|e| alloc::format!("decrease: {e:?}"))?;
    let after = current("after decrease")?;
    if gone != 16 || after != start - 16 {
        return Err(alloc::format!("decrease released {gone}, reservation {start} -> {after}"));
    }
    // Giving back a frame that is no longer ours is refused (0 extents).
    let again = reservation(XENMEM_DECREASE_RESERVATION, &mut frames, 0, me)
        .map_err(|e| alloc::format!("decrease again: {e:?}"))?;
    if again != 0 {
        return Err(alloc::format!("released {again} frames twice"));
    }
    // Balloon up: populate the same pseudo-physical frames, map the new machine frames back.
    let mut pfns: alloc::vec::Vec<u64> =
        pages.iter().map(|p| (p.va() - pv_guest::arch::VIRT_BASE) >> 12).collect();
    let got = reservation(XENMEM_POPULATE_PHYSMAP, &mut pfns, 0, me)
        .map_err(|e| alloc::format!("populate: {e:?}"))?;
    if got != 16 || current("after populate")? != start {
        return Err(alloc::format!("populate gave {got}"));
    }
    for (p, &mfn) in pages.iter().zip(&pfns) {
        if pv_guest::memory::shared::m2p_entry(mfn) != (p.va() - pv_guest::arch::VIRT_BASE) >> 12 {
            return Err("M2P not updated for a populated frame".into());
        }
        #[allow(unsafe_code)]
        // SAFETY: maps a frame populate_physmap just gave this kernel at its own VA.
        unsafe {
            guest::update_va_mapping(
                VAddr(p.va()),
                (mfn << 12) | 0x67,
                hypercall_abi::mmu::Uvmf(UVMF_INVLPG),
            )
        }
        .map_err(|e| alloc::format!("remap: {e:?}"))?;
        let page = p.shared();
        // Every word: the frame was zeroed at allocation or by the idle scrubber before it.
        if (0..512).any(|w| page.u64_at(w * 8).load(core::sync::atomic::Ordering::Relaxed) != 0) {
            return Err("populated page not zeroed".into());
        }
        page.u64_at(8).store(0x1234, core::sync::atomic::Ordering::Relaxed);
    }
    // Beyond the ceiling, nothing is given.
    let mut one = [0u64];
    if max == start {
        let n = reservation(XENMEM_INCREASE_RESERVATION, &mut one, 0, me)
            .map_err(|e| alloc::format!("increase: {e:?}"))?;
        if n != 0 {
            return Err(alloc::format!("increase beyond the ceiling gave {n}"));
        }
    }
    if reservation(XENMEM_INCREASE_RESERVATION, &mut one, 9, me) != Err(Errno::EINVAL) {
        return Err("a 2 MiB extent was not refused".into());
    }
    Ok(())
}
