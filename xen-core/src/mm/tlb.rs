//! When may a TLB still translate to a frame? The rule that keeps a stale translation from
//! outliving the reason it was allowed (docs/MEMORY.md, "TLB rule").
//!
//! A PV guest changes its page tables through the hypervisor but flushes its own TLB, when it
//! likes: Xen's ABI lets `mmu_update` drop a mapping without a flush. So a CPU can keep a
//! translation, even a writable one, to a frame after the last entry naming it is gone. That
//! is harmless while the frame stays what it was (the guest's own data page), and an escape as
//! soon as it changes role: freed and handed to someone else, or validated as a page table
//! (a stale writable translation to a live L1 is a writable window on every machine frame).
//!
//! The flush clock, as Xen's `tlbflush_clock`: a counter ticked by every full TLB flush of any
//! CPU, each CPU remembering the tick of its own last flush. A frame is stamped with the clock
//! whenever an entry that maps it (or its last type reference) goes away. Before a frame leaves
//! the free list, or takes a new type other than plain writable data, every CPU whose last
//! flush is not later than the frame's stamp is flushed. Stamps and ticks are 32-bit and
//! compared modulo 2^32 ([`flushed_since`]): an ancient stamp can look recent and cost one
//! needless flush, never the reverse, as long as no CPU goes 2^31 ticks without a flush. With
//! one CPU the clock only moves when that CPU flushes, so it cannot; a second CPU must flush
//! every CPU when the clock wraps, as Xen does.

/// The hypervisor's TLBs, as the frame table sees them.
pub trait Tlb: Sync {
    /// The flush clock now: the stamp for a frame that just lost a mapping.
    fn clock(&self) -> u32;
    /// Flushes every CPU whose last full flush is not later than `stamp`, so that no TLB
    /// holds a translation made before the frame stamped `stamp` lost its mappings.
    fn flush_stale(&self, stamp: u32);
}

/// Whether a flush at tick `flushed_at` happened after a frame was stamped `stamp` (so that
/// CPU holds no translation to it). Wrapping comparison: see the module docs.
pub fn flushed_since(flushed_at: u32, stamp: u32) -> bool {
    (flushed_at.wrapping_sub(stamp) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_after_the_stamp_is_clean_one_before_is_not() {
        assert!(flushed_since(8, 7));
        assert!(!flushed_since(7, 7), "a flush at the stamp's own tick came before the unmap");
        assert!(!flushed_since(6, 7));
        // Across the wrap.
        assert!(flushed_since(2, u32::MAX - 1));
        assert!(!flushed_since(u32::MAX - 1, 2));
    }
}
