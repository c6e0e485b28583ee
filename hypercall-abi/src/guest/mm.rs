//! Wrappers for memory: page-table updates (`mmu_update`, `update_va_mapping`, `mmuext_op`),
//! `memory_op` (reservations, the memory map, where the M2P is) and a machine-to-physical
//! lookup.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{count_u32, ptr_of, ptr_of_mut, raw};
use crate::errno::{Errno, HcResult, ret_to_result};
use crate::memory::{
    E820Entry, XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION,
    XENMEM_INCREASE_RESERVATION, XENMEM_MACHPHYS_MAPPING, XENMEM_MAXIMUM_GPFN,
    XENMEM_MAXIMUM_RAM_PAGE, XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP,
    XENMEM_POPULATE_PHYSMAP, XenMachphysMapping, XenMemoryMap, XenMemoryReservation,
};
use crate::mmu::{MmuUpdate, MmuextOp, Uvmf};
use crate::nr;
use crate::types::{DomId, Gfn, GuestHandle, Mfn, Pfn, VAddr};
use zerocopy::{FromBytes, IntoBytes};

/// Write `pte` into the L1 entry mapping `va` in the current address space
/// (`update_va_mapping`), then flush per `flags`.
///
/// # Safety
///
/// Changing the mapping of `va` must not invalidate memory Rust code still references.
pub unsafe fn update_va_mapping(va: VAddr, pte: u64, flags: Uvmf) -> HcResult {
    // SAFETY: the mapping change is the caller's contract.
    ret_to_result(unsafe { raw::hypercall3(nr::UPDATE_VA_MAPPING, va.0, pte, flags.0) })
}

/// [`update_va_mapping`] in the address space of domain `dom` (privileged: the toolstack
/// building a domain), `update_va_mapping_otherdomain`.
///
/// # Safety
///
/// As for [`update_va_mapping`], for whatever `dom` shares with this kernel.
pub unsafe fn update_va_mapping_otherdomain(
    va: VAddr,
    pte: u64,
    flags: Uvmf,
    dom: DomId,
) -> HcResult {
    // SAFETY: the mapping change is the caller's contract.
    ret_to_result(unsafe {
        raw::hypercall4(nr::UPDATE_VA_MAPPING_OTHERDOMAIN, va.0, pte, flags.0, dom.0.into())
    })
}

/// Apply page-table updates (`mmu_update`). Returns `(result, done)`: the hypervisor stops at
/// the first failing request, and `done` is how many succeeded.
///
/// # Safety
///
/// The updates must not invalidate memory Rust code still references.
pub unsafe fn mmu_update(reqs: &[MmuUpdate], foreigndom: DomId) -> (HcResult, u32) {
    let Ok(n) = count_u32(reqs.len()) else { return (Err(Errno::E2BIG), 0) };
    let mut done: u32 = 0;
    // SAFETY: the hypervisor reads `n` requests from the borrowed slice and writes the u32
    // `done`, borrowed mutably; the effect of the updates is the caller's contract.
    let r = unsafe {
        raw::hypercall4(nr::MMU_UPDATE, ptr_of(reqs), n, ptr_of_mut(&mut done), foreigndom.0.into())
    };
    (ret_to_result(r), done)
}

/// Extended MMU operations (`mmuext_op`): pin/unpin, new base pointer, TLB flushes. Returns
/// `(result, done)` as [`mmu_update`].
///
/// # Safety
///
/// The operations must not invalidate memory Rust code still references (e.g. a new base
/// pointer must map the running kernel).
pub unsafe fn mmuext_op(ops: &[MmuextOp], foreigndom: DomId) -> (HcResult, u32) {
    let Ok(n) = count_u32(ops.len()) else { return (Err(Errno::E2BIG), 0) };
    let mut done: u32 = 0;
    // SAFETY: as for `mmu_update`: `ops` is read, `done` written, both borrowed for the call.
    let r = unsafe {
        raw::hypercall4(nr::MMUEXT_OP, ptr_of(ops), n, ptr_of_mut(&mut done), foreigndom.0.into())
    };
    (ret_to_result(r), done)
}

/// Any memory op (`memory_op(cmd, arg)`).
///
/// # Safety
///
/// `T` must be the argument of `cmd` (`XENMEM_*`), any guest handles inside it must point to
/// buffers valid for the call, and the op's effect (freeing or remapping frames) must not
/// invalidate memory Rust code relies on.
pub unsafe fn memory_op<T: IntoBytes + FromBytes>(cmd: u32, arg: &mut T) -> HcResult {
    // SAFETY: `arg` is borrowed mutably for the call; the rest is the caller's contract.
    ret_to_result(unsafe { raw::hypercall2(nr::MEMORY_OP, cmd.into(), ptr_of_mut(arg)) })
}

/// This domain's pseudo-physical memory map: fills `buf` and returns the entries written.
pub fn memory_map(buf: &mut [E820Entry]) -> Result<usize, Errno> {
    let mut map = XenMemoryMap {
        nr_entries: count_u32(buf.len())? as u32,
        buffer: GuestHandle::from_mut_slice(buf),
        _pad: 0,
    };
    // SAFETY: XENMEM_memory_map writes at most `nr_entries` 20-byte entries into the borrowed
    // `buf` and updates `map`.
    unsafe { memory_op(XENMEM_MEMORY_MAP, &mut map) }?;
    Ok((map.nr_entries as usize).min(buf.len()))
}

/// Where the read-only M2P table is mapped and how large it is.
pub fn machphys_mapping() -> Result<XenMachphysMapping, Errno> {
    let mut m = XenMachphysMapping::default();
    // SAFETY: XENMEM_machphys_mapping only writes this struct.
    unsafe { memory_op(XENMEM_MACHPHYS_MAPPING, &mut m) }?;
    Ok(m)
}

fn memory_op_domid(cmd: u32, dom: DomId) -> HcResult {
    let mut d = dom;
    // SAFETY: these ops read a single `domid_t` (`DomId` is a transparent u16).
    unsafe { memory_op(cmd, &mut d) }
}

/// Pages currently allocated to `dom`.
pub fn current_reservation(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_CURRENT_RESERVATION, dom)
}

/// Maximum pages `dom` may have.
pub fn maximum_reservation(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_MAXIMUM_RESERVATION, dom)
}

/// Highest GPFN `dom` uses.
pub fn maximum_gpfn(dom: DomId) -> HcResult {
    memory_op_domid(XENMEM_MAXIMUM_GPFN, dom)
}

/// Highest machine frame of RAM in the host.
pub fn maximum_ram_page() -> HcResult {
    // SAFETY: XENMEM_maximum_ram_page takes a NULL argument and touches no guest memory.
    ret_to_result(unsafe { raw::hypercall2(nr::MEMORY_OP, XENMEM_MAXIMUM_RAM_PAGE.into(), 0) })
}

fn reservation(cmd: u32, frames: &mut [u64], order: u32) -> HcResult {
    let mut r = XenMemoryReservation {
        extent_start: GuestHandle::from_mut_slice(frames),
        nr_extents: frames.len() as u64,
        extent_order: order,
        domid: DomId::SELF_,
        ..Default::default()
    };
    // SAFETY: the callers pass only ops that read and write the borrowed `frames` (and `r`);
    // any other effect is the contract of the unsafe caller.
    unsafe { memory_op(cmd, &mut r) }
}

/// Asks for `frames.len()` new extents of `2^order` pages (`XENMEM_increase_reservation`); the
/// hypervisor writes the first MFN of each into `frames` and returns how many it allocated.
/// The new frames are not mapped anywhere: the kernel records them in its P2M and maps them.
pub fn increase_reservation(frames: &mut [Mfn], order: u32) -> HcResult {
    let raw = <[u64]>::mut_from_bytes(frames.as_mut_bytes()).map_err(|_| Errno::EINVAL)?;
    reservation(XENMEM_INCREASE_RESERVATION, raw, order)
}

/// Gives the extents starting at `frames` back to the hypervisor
/// (`XENMEM_decrease_reservation`); returns how many it took.
///
/// # Safety
///
/// The frames must not be mapped or referenced by anything in this kernel any more (the
/// hypervisor frees them; the next owner's data would appear there).
pub unsafe fn decrease_reservation(frames: &[Gfn], order: u32) -> HcResult {
    let mut copy = [0u64; 64];
    let mut done = 0;
    // The op writes nothing back for a decrease, but its handle is not read-only in the ABI:
    // go through a private copy, 64 frames at a time.
    for chunk in frames.chunks(copy.len()) {
        for (d, s) in copy.iter_mut().zip(chunk) {
            *d = s.0;
        }
        let n = reservation(XENMEM_DECREASE_RESERVATION, &mut copy[..chunk.len()], order)?;
        done += n;
        if n < chunk.len() as u64 {
            break;
        }
    }
    Ok(done)
}

/// Backs the pseudo-physical frames in `pfns` with memory (`XENMEM_populate_physmap`): on
/// return, entry `i` of `pfns` holds the frame (for a PV guest, the MFN) now behind the PFN it
/// named, for the kernel's P2M. Returns how many extents were populated.
pub fn populate_physmap(pfns: &mut [u64], order: u32) -> HcResult {
    reservation(XENMEM_POPULATE_PHYSMAP, pfns, order)
}

static M2P_MAX_MFN: AtomicU64 = AtomicU64::new(0);

/// The hypervisor's read-only machine-to-physical table entry for `mfn` (Xen maps it at
/// `MACH2PHYS_VIRT_START` in every PV address space): `None` past the table's end, or for a
/// frame that backs no pseudo-physical page of any PV guest.
///
/// Xen maps that table only where machine memory exists: an `mfn` in a hole of the host's
/// memory map faults (Linux reads it with an exception fixup for that reason). So this is
/// `unsafe`; for frames of its own domain a kernel uses the safe
/// [`P2m::mfn_to_pfn`](super::P2m::mfn_to_pfn).
///
/// # Safety
///
/// `mfn` must be a frame of RAM (for example one the hypervisor gave this domain).
pub unsafe fn m2p_entry(mfn: Mfn) -> Option<Pfn> {
    let mut max = M2P_MAX_MFN.load(Ordering::Relaxed);
    if max == 0 {
        max = machphys_mapping().map(|m| m.max_mfn).unwrap_or(0);
        M2P_MAX_MFN.store(max, Ordering::Relaxed);
    }
    if mfn.0 > max || mfn.0 >= crate::arch::MACH2PHYS_NR_ENTRIES {
        return None;
    }
    let va = crate::arch::MACH2PHYS_VIRT_START + mfn.0 * 8;
    // SAFETY: the hypervisor maps the M2P read-only at MACH2PHYS_VIRT_START for every frame of
    // RAM up to max_mfn (bounds checked above; RAM is the caller's contract); a volatile read
    // takes one snapshot of an entry the hypervisor may change.
    let pfn = unsafe { (va as *const u64).read_volatile() };
    (pfn != Pfn::INVALID.0).then_some(Pfn(pfn))
}
