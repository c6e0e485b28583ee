//! GNTTABOP_copy: copies between frames named by grant refs (the other domain must have
//! granted access, write access for a destination) or by the caller's own frame numbers,
//! without mapping either. Each side is claimed and pinned for the copy alone.

use alloc::sync::Arc;

use hypercall_abi::grant_table::*;
use hypercall_abi::{DomId, Mfn};

use super::table::{claim_and_pin, clear_flags};
use crate::domain::{self, Domain};
use crate::mm::machine::{self, with_mm};

/// GNTTABOP_copy: copies between frames named by grant refs (the other domain must have
/// granted us access, write access for a destination) or by our own frame numbers.
pub fn copy(caller: &Arc<Domain>, op: &mut GnttabCopy) {
    op.status = match copy_inner(caller, op) {
        Ok(()) => GNTST_OKAY,
        Err(s) => s,
    };
}

struct Side {
    frame: Mfn,
    held: Option<(Arc<Domain>, u32, bool)>,
}

fn resolve(
    caller: &Arc<Domain>,
    p: &GnttabCopyPtr,
    is_gref: bool,
    readonly: bool,
) -> Result<Side, i16> {
    // As Xen: only DOMID_SELF may name a frame (the caller's own), and a grant's owner may be
    // named DOMID_SELF too (the caller's own grant table).
    if !is_gref && p.domid != DomId::SELF_ {
        return Err(GNTST_PERMISSION_DENIED);
    }
    if is_gref {
        let owner = if p.domid == DomId::SELF_ { caller.id } else { p.domid };
        let g = domain::get(owner)
            .filter(|g| g.state() == domain::DomState::Running)
            .ok_or(GNTST_BAD_DOMAIN)?;
        let gref = p.as_gref().0;
        let frame = claim_and_pin(&mut g.grants.lock(), gref, caller.id, readonly)?;
        let owned = with_mm(|mm| mm.frame(frame).is_some_and(|f| f.owner == g.id));
        let side = Side { frame, held: Some((g, gref, readonly)) };
        if !owned {
            unhold(&side);
            return Err(GNTST_BAD_PAGE);
        }
        Ok(side)
    } else {
        let frame = Mfn(p.u);
        if !with_mm(|mm| mm.frame(frame).is_some_and(|f| f.owner == caller.id)) {
            return Err(GNTST_BAD_PAGE);
        }
        Ok(Side { frame, held: None })
    }
}

fn unhold(s: &Side) {
    if let Some((g, gref, ro)) = &s.held {
        let mut gt = g.grants.lock();
        let mask = gt.book.unpin(*gref, *ro);
        clear_flags(&gt, *gref, mask);
    }
}

fn copy_inner(caller: &Arc<Domain>, op: &GnttabCopy) -> Result<(), i16> {
    let len = usize::from(op.len);
    let (so, dof) = (usize::from(op.source.offset), usize::from(op.dest.offset));
    if so + len > 4096 || dof + len > 4096 {
        return Err(GNTST_BAD_COPY_ARG);
    }
    let src = resolve(caller, &op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, true)?;
    let dst = match resolve(caller, &op.dest, op.flags & GNTCOPY_DEST_GREF != 0, false) {
        Ok(d) => d,
        Err(s) => {
            unhold(&src);
            return Err(s);
        }
    };
    // A destination that is a page table must never be written through a copy.
    let dst_ok = with_mm(|mm| {
        mm.frame(dst.frame).is_some_and(|f| f.ptype.level().is_none() || f.type_count == 0)
    });
    if dst_ok && len > 0 {
        machine::copy_frame_range(src.frame, so, dst.frame, dof, len);
    }
    unhold(&src);
    unhold(&dst);
    if dst_ok { Ok(()) } else { Err(GNTST_BAD_PAGE) }
}
