//! `grant_table_op(cmd, ops, count)`: arrays of operations, each copied in once, performed, and
//! its status copied back. Long batches restart (continuation) so one call stays bounded.
//! Mapping and copying are `map` and `copy`; setting a table up and asking its size are here.

use alloc::sync::Arc;

use hypercall_abi::Errno;
use hypercall_abi::grant_table::*;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::table::{MAX_FRAMES, grow};
use super::{copy, map};
use crate::domain::{self, Domain};
use crate::hypercall::{Hc, HcResult, copy_in, copy_out, restart};

/// Operations per hypercall entry before restarting.
const BATCH: u64 = 256;

fn each<T: FromBytes + IntoBytes + Immutable>(
    hc: &mut Hc<'_>,
    a: [u64; 5],
    mut f: impl FnMut(&mut Hc<'_>, &mut T) -> Result<(), Errno>,
) -> HcResult {
    let (cmd, ops, count) = (a[0], a[1], a[2]);
    let size = core::mem::size_of::<T>() as u64;
    let n = count.min(BATCH);
    for i in 0..n {
        let at = ops + i * size;
        let mut op: T = copy_in(at)?;
        f(hc, &mut op)?;
        copy_out(at, &op)?;
    }
    if count > n {
        return restart(hc, hypercall_abi::nr::GRANT_TABLE_OP, &[cmd, ops + n * size, count - n]);
    }
    Ok(Some(0))
}

pub fn grant_table_op(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let dom = hc.dom.clone();
    match a[0] as u32 {
        GNTTABOP_MAP_GRANT_REF => each(hc, a, |hc, op: &mut GnttabMapGrantRef| {
            map::map(&dom, hc.ctx.guest_table, op);
            Ok(())
        }),
        GNTTABOP_UNMAP_GRANT_REF => each(hc, a, |hc, op: &mut GnttabUnmapGrantRef| {
            map::unmap(&dom, hc.ctx.guest_table, op);
            Ok(())
        }),
        GNTTABOP_UNMAP_AND_REPLACE => each(hc, a, |hc, op: &mut GnttabUnmapAndReplace| {
            map::unmap_and_replace(&dom, hc.ctx.guest_table, op);
            Ok(())
        }),
        GNTTABOP_SETUP_TABLE => each(hc, a, |_, op: &mut GnttabSetupTable| setup_table(&dom, op)),
        GNTTABOP_COPY => each(hc, a, |_, op: &mut GnttabCopy| {
            copy::copy(&dom, op);
            Ok(())
        }),
        GNTTABOP_QUERY_SIZE => each(hc, a, |_, op: &mut GnttabQuerySize| {
            query_size(&dom, op);
            Ok(())
        }),
        // Version 1 is the only one: asking for it succeeds, anything else is refused.
        GNTTABOP_SET_VERSION => {
            let mut op: GnttabSetVersion = copy_in(a[1])?;
            let asked = op.version;
            op.version = 1;
            copy_out(a[1], &op)?;
            if asked == 1 || asked == 0 { Ok(Some(0)) } else { Err(Errno::EINVAL) }
        }
        GNTTABOP_GET_VERSION => {
            let mut op: GnttabGetVersion = copy_in(a[1])?;
            domain::target_domain(&dom, op.dom)?;
            op.version = 1;
            copy_out(a[1], &op)?;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// GNTTABOP_setup_table: grows the caller's (or, for dom0, any domain's) table and reports
/// the frames' machine numbers.
pub fn setup_table(caller: &Arc<Domain>, op: &mut GnttabSetupTable) -> Result<(), Errno> {
    let d = match domain::target_domain(caller, op.dom) {
        Ok(d) => d,
        Err(_) => {
            op.status = GNTST_BAD_DOMAIN;
            return Ok(());
        }
    };
    // Copied out of the lock onto the stack (at most MAX_FRAMES: `grow` checked), so the guest
    // cannot make the hypervisor allocate for it.
    let mut frames = [hypercall_abi::Mfn(0); MAX_FRAMES as usize];
    let n = {
        let mut gt = d.grants.lock();
        if let Err(s) = grow(d.id, &mut gt, op.nr_frames) {
            op.status = s;
            return Ok(());
        }
        let n = op.nr_frames as usize;
        frames[..n].copy_from_slice(&gt.frames[..n]);
        n
    };
    for (i, f) in frames[..n].iter().enumerate() {
        copy_out(op.frame_list.raw() + i as u64 * 8, &f.0)?;
    }
    op.status = GNTST_OKAY;
    Ok(())
}

/// GNTTABOP_query_size.
pub fn query_size(caller: &Arc<Domain>, op: &mut GnttabQuerySize) {
    match domain::target_domain(caller, op.dom) {
        Ok(d) => {
            op.nr_frames = d.grants.lock().frames.len() as u32;
            op.max_nr_frames = MAX_FRAMES;
            op.status = GNTST_OKAY;
        }
        Err(_) => op.status = GNTST_BAD_DOMAIN,
    }
}
