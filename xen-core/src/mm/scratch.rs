//! Scratch buffers: large, temporary, virtually contiguous memory for work that does not fit
//! the heap, such as unpacking a Linux bzImage (66 MB of kernel and a 32 MiB dictionary)
//! before building a domain from it. A [`Scratch`] of N bytes takes N/4096 frames from the
//! frame allocator, zeroes them and maps them one after the other in a slot of the scratch
//! window (`arch::layout`: `SCRATCH_SLOTS` slots of `SCRATCH_SLOT` bytes, through
//! `arch::vmap`), and is used as a `[u8]`. Dropping it unmaps the pages and frees the frames.
//!
//! Running out of slots or frames is an error for the caller, never a panic. The page tables
//! `vmap` makes for a slot are kept for the next buffer there (a 2 MiB L1 per 512 pages).
//!
//! A buffer is used by the CPU that made it and is not `Send`: `vmap::unmap` flushes only this
//! CPU's TLB, which is enough when no other CPU ever touched the pages.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::Mfn;

use super::machine::{self, with_mm};
use crate::arch::layout::{SCRATCH_SLOT, SCRATCH_SLOTS, SCRATCH_WINDOW};
use crate::arch::vmap;

const _: () = assert!(SCRATCH_SLOTS <= 64, "the slot bitmap is one u64");

/// Slots in use, one bit each.
static SLOTS: AtomicU64 = AtomicU64::new(0);

/// Why a scratch buffer could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScratchError {
    /// More than one slot (`SCRATCH_SLOT` bytes) was asked for.
    TooLarge,
    /// Every slot is in use.
    NoSlot,
    /// The frame allocator ran out (for the pages or the tables mapping them).
    OutOfMemory,
}

/// A zeroed buffer of `len` bytes backed by frames, mapped contiguously.
pub struct Scratch {
    slot: usize,
    len: usize,
    /// Pages mapped so far (all of them once `new` returns).
    mapped: u64,
    /// Not `Send`: see the module's note on TLBs.
    _cpu_local: PhantomData<*mut u8>,
}

impl Scratch {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Result<Scratch, ScratchError> {
        if len as u64 > SCRATCH_SLOT {
            return Err(ScratchError::TooLarge);
        }
        let slot = claim_slot().ok_or(ScratchError::NoSlot)?;
        // From here on, dropping `s` gives back whatever was taken.
        let mut s = Scratch { slot, len, mapped: 0, _cpu_local: PhantomData };
        let pages = (len as u64).div_ceil(4096);
        let mut table_frame = || with_mm(|mm| mm.alloc_xen_frame()).map(|m| m.0 << 12);
        while s.mapped < pages {
            let mfn = with_mm(|mm| mm.alloc_xen_frame()).ok_or(ScratchError::OutOfMemory)?;
            machine::zero_frame(mfn);
            if vmap::map(s.va() + s.mapped * 4096, mfn.0 << 12, &mut table_frame).is_err() {
                // The slot is ours and its pages were unmapped when it was last freed, so only
                // a missing table frame gets here.
                with_mm(|mm| mm.free_xen_frame(mfn));
                return Err(ScratchError::OutOfMemory);
            }
            s.mapped += 1;
        }
        Ok(s)
    }

    fn va(&self) -> u64 {
        SCRATCH_WINDOW + self.slot as u64 * SCRATCH_SLOT
    }
}

/// Takes a free slot's bit.
fn claim_slot() -> Option<usize> {
    let mut used = SLOTS.load(Ordering::Relaxed);
    loop {
        let free = (!used).trailing_zeros() as usize;
        if free >= SCRATCH_SLOTS {
            return None;
        }
        match SLOTS.compare_exchange_weak(
            used,
            used | 1 << free,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(free),
            Err(now) => used = now,
        }
    }
}

impl Deref for Scratch {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `new` mapped [va, va + len) (page rounded) read-write to frames taken for
        // this buffer alone, zeroed; they stay mapped until `drop`, which needs `self`
        // exclusively, so the slice cannot outlive them. The slot is this buffer's alone.
        unsafe { core::slice::from_raw_parts(self.va() as *const u8, self.len) }
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the memory.
        unsafe { core::slice::from_raw_parts_mut(self.va() as *mut u8, self.len) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for i in 0..self.mapped {
            if let Some(pa) = vmap::unmap(self.va() + i * 4096) {
                with_mm(|mm| mm.free_xen_frame(Mfn(pa >> 12)));
            }
        }
        SLOTS.fetch_and(!(1 << self.slot), Ordering::Release);
    }
}

impl core::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Scratch({} bytes at {:#x})", self.len, self.va())
    }
}
