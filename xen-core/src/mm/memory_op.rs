//! `memory_op`: ballooning (increase/decrease reservation, populate_physmap), exchanging
//! frames for machine-contiguous ones (`XENMEM_exchange`, what a PV kernel's DMA needs),
//! reservation queries, the domain's memory map and where the M2P table is. Every array is a guest
//! pointer, read and written one entry at a time; long requests restart (continuation).

use hypercall_abi::memory::*;
use hypercall_abi::{DomId, Errno, Mfn};

use super::machine::{self, with_mm};
use crate::arch::layout::M2P_BASE;
use crate::domain::target_domain;
use crate::hypercall::{Hc, HcResult, copy_in, copy_out, restart};

/// Extents handled per hypercall entry before restarting.
const BATCH: u64 = 256;
/// Continuations carry the extents done so far in the command's upper bits, as Xen does.
const START_SHIFT: u32 = 6;

pub fn memory_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let cmd = (a[0] & ((1 << START_SHIFT) - 1)) as u32;
    let start = a[0] >> START_SHIFT;
    let arg = a[1];
    match cmd {
        XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP => {
            let r: XenMemoryReservation = copy_in(arg)?;
            let d = target_domain(hc.dom, r.domid)?;
            // Only single pages: larger extents would need contiguous machine memory.
            if r.extent_order != 0 {
                return Err(Errno::EINVAL);
            }
            let end = r.nr_extents.min(start + BATCH);
            let mut done = start;
            while done < end {
                let slot = r.extent_start.raw() + done * 8;
                let ok = match cmd {
                    XENMEM_INCREASE_RESERVATION => match alloc_zeroed(d.id) {
                        Ok(mfn) => r.extent_start.is_null() || copy_out(slot, &mfn.0).is_ok(),
                        Err(_) => false,
                    },
                    XENMEM_DECREASE_RESERVATION => match copy_in::<u64>(slot) {
                        Ok(gmfn) => with_mm(|mm| mm.guest_remove_page(d.id, Mfn(gmfn))).is_ok(),
                        Err(_) => false,
                    },
                    _ => match copy_in::<u64>(slot) {
                        Ok(gpfn) if gpfn < 1 << 40 => match alloc_zeroed(d.id) {
                            Ok(mfn) => {
                                with_mm(|mm| mm.set_m2p(mfn, gpfn));
                                d.note_pfn(gpfn);
                                copy_out(slot, &mfn.0).is_ok()
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    },
                };
                if !ok {
                    // As Xen: the result is the number of extents done; the caller sees the
                    // shortfall (out of memory, over its ceiling, a bad frame or pointer).
                    return Ok(Some(done));
                }
                done += 1;
            }
            if done < r.nr_extents {
                let arg0 = u64::from(cmd) | (done << START_SHIFT);
                return restart(hc, hypercall_abi::nr::MEMORY_OP, &[arg0]);
            }
            Ok(Some(done))
        }
        XENMEM_EXCHANGE => exchange(hc, arg),
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => {
            let dom: DomId = copy_in(arg)?;
            let d = target_domain(hc.dom, dom)?;
            let m = with_mm(|mm| mm.domain(d.id).copied()).ok_or(Errno::ESRCH)?;
            Ok(Some(if cmd == XENMEM_CURRENT_RESERVATION { m.tot_pages } else { m.max_pages }))
        }
        XENMEM_MAXIMUM_RAM_PAGE => Ok(Some(with_mm(|mm| mm.nr_frames()) - 1)),
        XENMEM_MAXIMUM_GPFN => {
            let dom: DomId = copy_in(arg)?;
            let d = target_domain(hc.dom, dom)?;
            Ok(Some(d.nr_pages().saturating_sub(1)))
        }
        XENMEM_MACHPHYS_MAPPING => {
            let max_mfn = with_mm(|mm| mm.nr_frames()) - 1;
            let m = XenMachphysMapping {
                v_start: M2P_BASE,
                v_end: M2P_BASE + (max_mfn + 1) * 8,
                max_mfn,
            };
            copy_out(arg, &m)?;
            Ok(Some(0))
        }
        XENMEM_MEMORY_MAP => {
            // A PV domain's pseudo-physical memory is one RAM range from 0.
            let mut map: XenMemoryMap = copy_in(arg)?;
            if map.nr_entries < 1 {
                return Err(Errno::EINVAL);
            }
            let e = E820Entry { addr: 0, size: hc.dom.nr_pages() * 4096, kind: E820_RAM };
            copy_out(map.buffer.raw(), &e)?;
            map.nr_entries = 1;
            copy_out(arg, &map)?;
            Ok(Some(0))
        }
        XENMEM_MACHINE_MEMORY_MAP => machine_memory_map(hc, arg),
        _ => Err(Errno::ENOSYS),
    }
}

/// `XENMEM_machine_memory_map`, for dom0 only: the loader's memory map. As on Xen, a null
/// buffer asks for the count alone, and a buffer must have room for one entry more than the
/// map has (`-EINVAL` otherwise); the entries are 20 bytes each, packed.
fn machine_memory_map(hc: &mut Hc<'_>, arg: u64) -> HcResult {
    if !hc.dom.is_privileged {
        return Err(Errno::EPERM);
    }
    let mut map: XenMemoryMap = copy_in(arg)?;
    let entries = machine::machine_memory_map();
    if map.buffer.raw() != 0 {
        if (map.nr_entries as usize) < entries.len() + 1 {
            return Err(Errno::EINVAL);
        }
        for (i, e) in entries.iter().enumerate() {
            copy_out(map.buffer.raw() + i as u64 * size_of::<E820Entry>() as u64, e)?;
        }
    }
    map.nr_entries = entries.len() as u32;
    copy_out(arg, &map)?;
    Ok(Some(0))
}

/// Largest extent order `XENMEM_exchange` hands out (2 MiB), as Xen's default for a domain.
const MAX_EXCHANGE_ORDER: u32 = 9;
/// Chunks exchanged per hypercall entry before restarting.
const EXCHANGE_BATCH: u64 = 16;

/// `XENMEM_exchange` for a PV domain: in chunks of `2^max(in order, out order)` pages, the
/// input frames (GMFNs, the domain's own, unused) are given up for a machine-contiguous run;
/// each output extent's GPFN is read from `out.extent_start`, its frames' M2P entries set,
/// and its first MFN written back there. `nr_exchanged` counts input extents done (the
/// caller remaps its pages and updates its P2M itself, as on Xen).
fn exchange(hc: &mut Hc<'_>, arg: u64) -> HcResult {
    let mut x: XenMemoryExchange = copy_in(arg)?;
    let d = target_domain(hc.dom, x.input.domid)?;
    let (io, oo) = (x.input.extent_order, x.output.extent_order);
    if io > MAX_EXCHANGE_ORDER || oo > MAX_EXCHANGE_ORDER {
        return Err(Errno::EPERM);
    }
    let pages = x.input.nr_extents.checked_shl(io).ok_or(Errno::EINVAL)?;
    if x.input.nr_extents > 1 << 32
        || x.output.nr_extents > 1 << 32
        || pages != x.output.nr_extents << oo
        || x.nr_exchanged > x.input.nr_extents
    {
        return Err(Errno::EINVAL);
    }
    let chunk = io.max(oo);
    let (in_per, out_per) = (1u64 << (chunk - io), 1u64 << (chunk - oo));
    if !x.nr_exchanged.is_multiple_of(in_per) {
        return Err(Errno::EINVAL);
    }
    let mut batch = 0;
    while x.nr_exchanged < x.input.nr_extents {
        if batch == EXCHANGE_BATCH {
            copy_out(arg, &x)?;
            return restart(hc, hypercall_abi::nr::MEMORY_OP, &[u64::from(XENMEM_EXCHANGE), arg]);
        }
        let c = x.nr_exchanged / in_per;
        // Transient, bounded (2^MAX_EXCHANGE_ORDER frames) and made fallibly: out of heap is
        // ENOMEM to the guest, never a panic.
        let mut old = alloc::vec::Vec::new();
        old.try_reserve_exact(1 << chunk).map_err(|_| Errno::ENOMEM)?;
        for e in 0..in_per {
            let gmfn: u64 = copy_in(x.input.extent_start.raw() + (c * in_per + e) * 8)?;
            old.extend((0..1u64 << io).map(|k| Mfn(gmfn.wrapping_add(k))));
        }
        let mut gpfns = alloc::vec::Vec::new();
        gpfns.try_reserve_exact(out_per as usize).map_err(|_| Errno::ENOMEM)?;
        for j in 0..out_per {
            let gpfn: u64 = copy_in(x.output.extent_start.raw() + (c * out_per + j) * 8)?;
            if gpfn >= 1 << 40 {
                return Err(Errno::EINVAL);
            }
            gpfns.push(gpfn);
        }
        let base = match with_mm(|mm| mm.exchange(d.id, &old, chunk)) {
            Ok(b) => b,
            Err(e) => {
                copy_out(arg, &x)?;
                return Err(e);
            }
        };
        for (j, &gpfn) in gpfns.iter().enumerate() {
            let mfn = base.0 + ((j as u64) << oo);
            with_mm(|mm| {
                for k in 0..1u64 << oo {
                    mm.set_m2p(Mfn(mfn + k), gpfn + k);
                }
            });
            for k in 0..1u64 << oo {
                machine::zero_frame(Mfn(mfn + k));
            }
            copy_out(x.output.extent_start.raw() + (c * out_per + j as u64) * 8, &mfn)?;
        }
        x.nr_exchanged += in_per;
        batch += 1;
    }
    copy_out(arg, &x)?;
    Ok(Some(0))
}

/// A zeroed frame for `dom`: one the idle CPU scrubbed if there is one (no zeroing here),
/// else a dirty one zeroed now.
fn alloc_zeroed(dom: DomId) -> Result<Mfn, Errno> {
    with_mm(|mm| mm.domain_alloc_zeroed(dom, machine::zero_frame))
}
