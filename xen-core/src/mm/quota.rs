//! What a domain may make the hypervisor allocate for it, and what it has. Every hypervisor
//! allocation a guest can cause (its grant bookkeeping, its event-channel table, its records,
//! a console line) is charged here before it is made and uncharged when it is freed; a charge
//! past the limit is refused with `ENOMEM`, which the operation that wanted the memory turns
//! into its own errno or status. Each structure also keeps its own count limit (grant frames,
//! maps, ports: docs/MEMORY.md lists them), so a quota is the sum of what those limits allow
//! plus the domain's records: the backstop that makes "bounded and charged" hold for anything
//! counted here, whatever a limit elsewhere says.
//!
//! Shared (`Arc`) between the domain and its tables, so the tables charge without knowing
//! about domains; atomics, so no lock order is involved.

use core::sync::atomic::{AtomicUsize, Ordering};

use hypercall_abi::Errno;

/// Default quotas: a domU's limits allow about 670 KiB (64 grant frames' active entries
/// 512 KiB, 4096 maps 128 KiB, 1024 ports 16 KiB, records), dom0's more for its back ends.
pub const DOMU_HEAP_QUOTA: usize = 1 << 20;
pub const DOM0_HEAP_QUOTA: usize = 16 << 20;

/// A domain's hypervisor-heap account.
#[derive(Debug)]
pub struct HeapQuota {
    used: AtomicUsize,
    limit: usize,
}

impl HeapQuota {
    pub const fn new(limit: usize) -> Self {
        HeapQuota { used: AtomicUsize::new(0), limit }
    }

    /// Charges `bytes`, or refuses (`ENOMEM`) if that would pass the limit; nothing is
    /// charged then.
    pub fn charge(&self, bytes: usize) -> Result<(), Errno> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let new = cur.checked_add(bytes).filter(|&n| n <= self.limit).ok_or(Errno::ENOMEM)?;
            match self.used.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back what a charge took.
    pub fn uncharge(&self, bytes: usize) {
        let prev = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(prev >= bytes, "uncharged more than was charged");
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Grows `v` to hold `n` more items, charging `quota` for the new capacity first: `ENOMEM`
/// past the quota or when the heap cannot give the memory, never a panic. Returns the bytes
/// charged (to uncharge when `v` is freed: its capacity times the item size).
pub fn try_grow<T>(
    v: &mut alloc::vec::Vec<T>,
    n: usize,
    quota: &HeapQuota,
) -> Result<usize, Errno> {
    let old = v.capacity();
    let want = v.len().checked_add(n).ok_or(Errno::ENOMEM)?;
    if want <= old {
        return Ok(0);
    }
    let bytes = (want - old).checked_mul(core::mem::size_of::<T>()).ok_or(Errno::ENOMEM)?;
    quota.charge(bytes)?;
    if v.try_reserve_exact(want - v.len()).is_err() {
        quota.uncharge(bytes);
        return Err(Errno::ENOMEM);
    }
    // `Vec` records exactly the capacity asked for; should that change, the count follows
    // what was really taken (a rounding, at most one allocation's slack), so frees match.
    let extra = (v.capacity() - want) * core::mem::size_of::<T>();
    quota.used.fetch_add(extra, Ordering::AcqRel);
    Ok(bytes + extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_refused_ones_take_nothing() {
        let q = HeapQuota::new(100);
        q.charge(60).unwrap();
        assert_eq!(q.charge(41), Err(Errno::ENOMEM));
        assert_eq!(q.used(), 60);
        q.charge(40).unwrap();
        q.uncharge(100);
        assert_eq!(q.used(), 0);
        assert_eq!(q.charge(usize::MAX), Err(Errno::ENOMEM), "overflow is a refusal");
    }

    #[test]
    fn vectors_grow_only_within_the_quota() {
        let q = HeapQuota::new(64);
        let mut v: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
        let c = try_grow(&mut v, 4, &q).unwrap();
        assert!(c >= 32 && q.used() == c);
        assert_eq!(try_grow(&mut v, 100, &q), Err(Errno::ENOMEM));
        assert_eq!(q.used(), c, "a refused growth charges nothing");
        assert_eq!(try_grow(&mut v, 2, &q), Ok(0), "room already there");
    }
}
