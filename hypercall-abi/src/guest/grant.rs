//! Grant-table wrappers (`grant_table_op`): a typed function per op, so a command number can
//! never travel with the wrong struct, plus the table set-up and queries. Mapping this
//! domain's own table and writing entries: `PageSlot::map_grant_table` and
//! [`AtomicGrantEntryV1`](crate::grant_table::AtomicGrantEntryV1).

use super::{count_u32, ptr_of_mut, raw};
use crate::errno::{Errno, HcResult, ret_to_result};
use crate::grant_table::{
    GNTST_OKAY, GnttabCopy, GnttabDumpTable, GnttabGetVersion, GnttabMapGrantRef, GnttabOp,
    GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GnttabSwapGrantRef, GnttabTransfer,
    GnttabUnmapAndReplace, GnttabUnmapGrantRef,
};
use crate::nr;
use crate::types::{DomId, GuestHandle, Mfn};
use zerocopy::{FromBytes, IntoBytes};

/// Any grant-table op on a batch (`grant_table_op(cmd, ops, count)`), with the command given
/// by number. Prefer [`gnttab_op`] or the typed wrappers, which take the command from the
/// struct. Per-element results are in each element's `status`.
///
/// # Safety
///
/// `T` must be the struct of `cmd` (`GNTTABOP_*`), and the ops' effects (mapping at
/// `host_addr`, copying into frames, transferring pages) must not invalidate memory Rust code
/// relies on.
pub unsafe fn grant_table_op<T: IntoBytes + FromBytes>(cmd: u32, ops: &mut [T]) -> HcResult {
    let n = count_u32(ops.len())?;
    // SAFETY: `ops` is borrowed mutably for the call; its type matching `cmd` and the effects
    // are the caller's contract.
    ret_to_result(unsafe { raw::hypercall3(nr::GRANT_TABLE_OP, cmd.into(), ptr_of_mut(ops), n) })
}

/// A batch of the grant op `T` (the command comes from `T`, so it cannot mismatch the struct).
/// Per-element results are in each element's `status`.
///
/// # Safety
///
/// The ops' effects (mapping at `host_addr`, copying into frames, transferring pages) must not
/// invalidate memory Rust code relies on; see each typed wrapper.
pub unsafe fn gnttab_op<T: GnttabOp>(ops: &mut [T]) -> HcResult {
    // SAFETY: `T` is the struct of `T::CMD` (the `GnttabOp` impls pair them); the effects are
    // the caller's contract.
    unsafe { grant_table_op(T::CMD, ops) }
}

/// Maps grants (`GNTTABOP_map_grant_ref`): for each op, the granted frame appears at
/// `host_addr` (or the PTE `host_addr` names) and `handle` comes back for the unmap.
///
/// # Safety
///
/// Each `host_addr` must be a page-aligned address whose current contents no Rust code
/// references (it is replaced by the peer's page, which the peer may write at any time: access
/// it only atomically or volatilely), and it must stay mapped until unmapped with the handle.
pub unsafe fn gnttab_map_grant_ref(ops: &mut [GnttabMapGrantRef]) -> HcResult {
    // SAFETY: the caller's contract above.
    unsafe { gnttab_op(ops) }
}

/// Unmaps grant mappings (`GNTTABOP_unmap_grant_ref`).
///
/// # Safety
///
/// Nothing may reference the mapped pages any more (they vanish).
pub unsafe fn gnttab_unmap_grant_ref(ops: &mut [GnttabUnmapGrantRef]) -> HcResult {
    // SAFETY: the caller's contract above.
    unsafe { gnttab_op(ops) }
}

/// Unmaps a grant mapping and moves another address's mapping into its place
/// (`GNTTABOP_unmap_and_replace`).
///
/// # Safety
///
/// As for [`gnttab_unmap_grant_ref`], and `new_addr`'s old mapping disappears too.
pub unsafe fn gnttab_unmap_and_replace(ops: &mut [GnttabUnmapAndReplace]) -> HcResult {
    // SAFETY: the caller's contract above.
    unsafe { gnttab_op(ops) }
}

/// Copies between frames named by grant reference or by this domain's frame numbers without
/// mapping them (`GNTTABOP_copy`); each op's `status` says how it went.
///
/// # Safety
///
/// A destination in this domain's own memory (a `gmfn` side, or a grant of our own) must not
/// be memory Rust code holds references to, other than through atomics: the hypervisor writes
/// it behind the compiler's back.
pub unsafe fn gnttab_copy(ops: &mut [GnttabCopy]) -> HcResult {
    // SAFETY: the caller's contract above.
    unsafe { gnttab_op(ops) }
}

/// Gives pages to other domains (`GNTTABOP_transfer`), each into a `GTF_accept_transfer` entry
/// of the receiver.
///
/// # Safety
///
/// The frames must be unmapped and unreferenced in this kernel: they stop being ours.
pub unsafe fn gnttab_transfer(ops: &mut [GnttabTransfer]) -> HcResult {
    // SAFETY: the caller's contract above.
    unsafe { gnttab_op(ops) }
}

/// Swaps two entries of this domain's own table (`GNTTABOP_swap_grant_ref`); each op's
/// `status` says how it went.
pub fn gnttab_swap_grant_ref(ops: &mut [GnttabSwapGrantRef]) -> HcResult {
    // SAFETY: the op only reads and writes the borrowed structs and entries of our grant table,
    // which Rust code accesses only through atomics.
    unsafe { gnttab_op(ops) }
}

/// Asks the hypervisor to print `dom`'s grant table on its console (`GNTTABOP_dump_table`).
pub fn gnttab_dump_table(dom: DomId) -> Result<(), Errno> {
    let mut op = [GnttabDumpTable { dom, status: 0 }];
    // SAFETY: the op only writes its status.
    unsafe { gnttab_op(&mut op) }?;
    gntst(op[0].status)
}

/// Turn a grant op's `status` into a result (`GNTST_*` values are not errnos, so any failure is
/// reported as `EINVAL` here; read the struct for the exact status).
fn gntst(status: i16) -> Result<(), Errno> {
    if status == GNTST_OKAY { Ok(()) } else { Err(Errno::EINVAL) }
}

/// Current and maximum number of grant-table frames of `dom`.
pub fn gnttab_query_size(dom: DomId) -> Result<GnttabQuerySize, Errno> {
    let mut op = [GnttabQuerySize { dom, ..Default::default() }];
    // SAFETY: `op` is the struct of GNTTABOP_query_size, which only writes into it.
    unsafe { gnttab_op(&mut op) }?;
    gntst(op[0].status)?;
    Ok(op[0])
}

/// Grow `dom`'s grant table to `frames.len()` frames and get their MFNs (map them to write
/// grant entries).
pub fn gnttab_setup_table(dom: DomId, frames: &mut [Mfn]) -> Result<(), Errno> {
    let mut op = [GnttabSetupTable {
        dom,
        nr_frames: count_u32(frames.len())? as u32,
        frame_list: GuestHandle::from_mut_slice(frames),
        ..Default::default()
    }];
    // SAFETY: GNTTABOP_setup_table reads `op` and writes at most `nr_frames` u64 MFNs into the
    // borrowed `frames` slice (`Mfn` is a transparent u64).
    unsafe { gnttab_op(&mut op) }?;
    gntst(op[0].status)
}

/// Select grant-table `version` (we support only 1); returns the version in force.
pub fn gnttab_set_version(version: u32) -> Result<u32, Errno> {
    let mut op = [GnttabSetVersion { version }];
    // SAFETY: `op` is the struct of GNTTABOP_set_version.
    unsafe { gnttab_op(&mut op) }?;
    Ok(op[0].version)
}

/// Grant-table version of `dom`.
pub fn gnttab_get_version(dom: DomId) -> Result<u32, Errno> {
    let mut op = [GnttabGetVersion { dom, ..Default::default() }];
    // SAFETY: `op` is the struct of GNTTABOP_get_version.
    unsafe { gnttab_op(&mut op) }?;
    Ok(op[0].version)
}
