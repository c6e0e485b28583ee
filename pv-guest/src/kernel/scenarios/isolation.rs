//! The three attacks of issue 11, each a hostile domU of its own, reported as `ATTACK <name>:
//! REFUSED|SUCCEEDED` lines beside a victim domU (tests/tests/isolation.rs):
//! - `scenario=stale-tlb`: a frame leaves the domain and comes back while the TLB still holds
//!   a writable translation to it, and is hooked in as an L1 table;
//! - `scenario=multicall-hog`: one multicall entry of `mmu_update` with 2^31 - 1 requests,
//!   read from one page mapped 2^21 times (32 GiB of requests from four pages);
//! - `scenario=grant-self-map`: the domain maps its own grant again and again at one address.
//!
//! The page-table helpers here find free slots in the kernel's own tables: an empty entry of
//! the L2 that maps the kernel (2 MiB of address space to hook an L1 into) and an empty L4
//! slot in the lower half (512 GiB to hook an L3 into).

use alloc::format;
use core::sync::atomic::Ordering;

use hypercall_abi::memory::{XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION};
use hypercall_abi::mmu::{MMU_MACHPHYS_UPDATE, MMUEXT_INVLPG_LOCAL, MmuextOp};
use hypercall_abi::multicall::MulticallEntry;
use hypercall_abi::{DomId, guest, nr};

use pv_guest::arch::VIRT_BASE;
use pv_guest::memory::{pages, shared};
use pv_guest::{println, time};

use super::hostile::{DATA, mmuext, report, write_pte};
use super::limits::map_own_grant_until_refused;
use crate::kernel::selftest::fuzz::{free_l2_index, kernel_l2, write_entry};
use crate::kernel::selftest::memory::reservation;
use crate::kernel::selftest::trap::{resume_hook, trap_vector};

/// Flags of a page-table entry naming a lower table: present, rw, user, accessed.
const TABLE: u64 = 0x27;
/// A read-only data mapping: present, user, accessed.
const READ_ONLY: u64 = 0x25;

/// Hole 1 of issue 11. Each round: write a page P (the TLB holds a writable translation), clear
/// its PTE with `mmu_update` and no flush (allowed: flushing is the guest's job), give P back,
/// take a page back (the free list hands P out again), hook it into the kernel's L2 as an L1
/// (all zeros: it validates), then write through the stale translation an entry mapping P
/// itself writable. Before the TLB rule (MEMORY.md) nothing flushed the stale entry: the write
/// landed and the domain held a writable window on a live L1, hence on any machine frame. With
/// the rule, P is flushed out of every TLB before it leaves the free list, and the write faults.
pub fn stale_tlb(line: &str) {
    let rounds: u32 = pv_guest::cmdline_param(line, "rounds", 8);
    pv_guest::traps::set_exception_hook(resume_hook);
    let Some((l2, l2_va)) = kernel_l2() else {
        return println!("ATTACK stale-tlb: FAIL no L2 found");
    };
    let Some(index) = free_l2_index(l2_va) else {
        return println!("ATTACK stale-tlb: FAIL no free L2 entry");
    };
    let window = VIRT_BASE + ((index as u64) << 21);
    let (mut same, mut faulted, mut escaped) = (0u32, 0u32, 0u32);
    for _ in 0..rounds {
        let Some(page) = pages::alloc_page() else { break };
        let (va, p) = (page.va(), page.mfn().0);
        page.shared().u64_at(0).store(0x5A5A_5A5A, Ordering::SeqCst);
        if write_pte(va, 0).is_err() {
            return println!("ATTACK stale-tlb: FAIL could not clear the PTE");
        }
        if reservation(XENMEM_DECREASE_RESERVATION, &mut [p], 0, DomId::SELF_) != Ok(1) {
            return println!("ATTACK stale-tlb: FAIL decrease_reservation");
        }
        let mut got = [0u64];
        if reservation(XENMEM_INCREASE_RESERVATION, &mut got, 0, DomId::SELF_) != Ok(1) {
            return println!("ATTACK stale-tlb: FAIL increase_reservation");
        }
        if got[0] != p {
            // Another frame came back: this round proves nothing; the stale entry still names
            // P, which is free (and will be flushed out before it is handed out).
            continue;
        }
        same += 1;
        if let Err(e) = write_entry(l2, index, (p << 12) | TABLE) {
            return println!("ATTACK stale-tlb: FAIL hooking P as an L1: {e:?}");
        }
        // Through the stale translation: entry 0 of P (now an L1) := P itself, writable.
        let v = trap_vector!("mov qword ptr [{va}], {pte}", va = in(reg) va, pte = in(reg) (p << 12) | DATA);
        if v == 14 {
            faulted += 1;
        } else if v == u64::MAX {
            // The write landed in P: read the window it opened (faults if it did not).
            let mut seen = 0u64;
            let r =
                trap_vector!("mov {x}, qword ptr [{w}]", w = in(reg) window, x = inout(reg) seen);
            if r == u64::MAX && seen == (p << 12) | DATA {
                escaped += 1;
                use_window(window);
            }
        }
        // Unhook (devalidates P), and the round's page stays the domain's, unmapped.
        let _ = write_entry(l2, index, 0);
    }
    let name = "stale-tlb-writable-window-on-a-page-table";
    println!(
        "ATTACK stale-tlb: {rounds} rounds, P came back {same} times, {faulted} stale writes faulted, {escaped} windows"
    );
    if same == 0 {
        println!("ATTACK {name}: INCONCLUSIVE the free list never gave the page back");
    } else if escaped > 0 {
        report(name, Err(format!("{escaped} writable windows on a live L1")));
    } else {
        report(name, Ok(format!("{faulted} of {same} stale writes faulted (#PF)")));
    }
}

/// With a writable window on a live L1 (entry 0 maps the L1 itself at `window`), entry 1 can
/// name any machine frame: walk RAM looking for the victim's pattern (page n, word i holds
/// n << 32 | i) and change one word of each page found, to show what the hole gives.
fn use_window(window: u64) {
    let max = guest::maximum_ram_page().unwrap_or(0);
    let l1 = window as *mut u64;
    let target = window + 4096;
    let mut changed = 0u32;
    for mfn in 0x100..=max {
        #[allow(unsafe_code)]
        // SAFETY: only reached through the hole this scenario demonstrates (a writable L1
        // window the hypervisor should never have given): entry 1 of that L1 is set to the
        // frame under test, then the TLB entry for `target` is flushed.
        unsafe {
            l1.add(1).write_volatile((mfn << 12) | DATA);
        }
        let _ = mmuext(MmuextOp::new(MMUEXT_INVLPG_LOCAL, target, 0));
        #[allow(unsafe_code)]
        // SAFETY: as above; `target` maps frame `mfn` now.
        let w = |i: usize| unsafe { ((target + i as u64 * 8) as *const u64).read_volatile() };
        if w(1) & 0xFFFF_FFFF == 1
            && w(2) & 0xFFFF_FFFF == 2
            && w(511) & 0xFFFF_FFFF == 511
            && (w(1) >> 32) < 64
        {
            #[allow(unsafe_code)]
            // SAFETY: as above: the write the hole allows, into another domain's page.
            unsafe {
                ((target + 24) as *mut u64).write_volatile(w(3) ^ 1);
            }
            changed += 1;
        }
    }
    println!("ATTACK stale-tlb: through the window: {changed} pages of another domain changed");
}

/// Hole 2 of issue 11: one multicall entry of `mmu_update` with 2^31 - 1 requests. The
/// requests are one page R (each entry a harmless M2P update of R itself) mapped read-only at
/// every 4 KiB of 32 GiB: an L1 naming R 512 times, an L2 naming that L1 512 times, an L3
/// naming that L2 32 times, hooked into an empty L4 slot. Before multicall became its own
/// continuation, the hypervisor looped `mmu_update`'s restarts in place with interrupts off:
/// the only CPU was held for minutes and nothing else ran, not even the hypervisor's timers.
/// Now the hypervisor returns to the guest between bounded steps, and the scheduler preempts
/// this domain: the victim's ticker keeps ticking while this call runs, until dom0 destroys
/// the attacker. `entries=<n>` puts n such entries in the batch.
pub fn multicall_hog(line: &str) {
    let entries: usize = pv_guest::cmdline_param(line, "entries", 4usize).clamp(1, 64);
    let name = "multicall-hog";
    let pages: alloc::vec::Vec<pages::OwnPage> =
        (0..5).map_while(|_| pages::alloc_page()).collect();
    let [r, t, s, u, calls] = pages[..] else {
        return println!("ATTACK {name}: FAIL not enough pages");
    };
    let pfn_r = (r.va() - VIRT_BASE) >> 12;
    for i in 0..256 {
        r.shared().u64_at(i * 16).store((r.mfn().0 << 12) | MMU_MACHPHYS_UPDATE, Ordering::Relaxed);
        r.shared().u64_at(i * 16 + 8).store(pfn_r, Ordering::Relaxed);
    }
    for i in 0..512 {
        t.shared().u64_at(i * 8).store((r.mfn().0 << 12) | READ_ONLY, Ordering::Relaxed);
        s.shared().u64_at(i * 8).store((t.mfn().0 << 12) | TABLE, Ordering::Relaxed);
        let e = if i < 32 { (s.mfn().0 << 12) | TABLE } else { 0 };
        u.shared().u64_at(i * 8).store(e, Ordering::Relaxed);
    }
    // The tables may not be mapped writable while they are page tables.
    for p in [t, s, u] {
        if write_pte(p.va(), (p.mfn().0 << 12) | READ_ONLY).is_err() {
            return println!("ATTACK {name}: FAIL remapping a table read-only");
        }
    }
    let si = pv_guest::start_info();
    let Some(l4) = pages::l4_mfn() else { return println!("ATTACK {name}: FAIL no L4") };
    let Some(slot) = (1..256).find(|&i| shared::read_table_entry(si.pt_base.0, i) == 0) else {
        return println!("ATTACK {name}: FAIL no free L4 slot");
    };
    if let Err(e) = write_entry(l4, slot, (u.mfn().0 << 12) | TABLE) {
        return println!("ATTACK {name}: FAIL hooking the request tables: {e:?}");
    }
    let base = (slot as u64) << 39;
    let last = base + (32 << 30) - 16;
    #[allow(unsafe_code)]
    // SAFETY: `last` lies in the 32 GiB just hooked, which maps R read-only everywhere.
    let seen = unsafe { (last as *const u64).read_volatile() };
    if seen != (r.mfn().0 << 12) | MMU_MACHPHYS_UPDATE {
        return println!("ATTACK {name}: FAIL the 32 GiB of requests do not read as R");
    }
    let batch: alloc::vec::Vec<MulticallEntry> = (0..entries)
        .map(|_| {
            MulticallEntry::new(nr::MMU_UPDATE, &[base, 0x7FFF_FFFF, 0, u64::from(DomId::SELF_.0)])
        })
        .collect();
    for (i, e) in batch.iter().enumerate() {
        #[allow(unsafe_code)]
        // SAFETY: `calls` is this kernel's own page, 64 entries of 64 bytes fit.
        unsafe {
            ((calls.va() + i as u64 * 64) as *mut MulticallEntry).write_volatile(*e);
        }
    }
    println!(
        "ATTACK {name}: started: {entries} entries of mmu_update x 2^31-1 over 32 GiB of requests at {base:#x}"
    );
    let t0 = time::now_ns();
    #[allow(unsafe_code)]
    // SAFETY: the entries are on this kernel's own page; each only rewrites R's M2P entry.
    let r = unsafe { guest::raw::hypercall2(nr::MULTICALL, calls.va(), entries as u64) };
    println!("ATTACK {name}: returned {r} after {} ms", (time::now_ns() - t0) / 1_000_000);
}

/// Hole 3 of issue 11: the domain grants one of its pages to itself and maps that grant again
/// and again at one address (each map replaces the PTE but takes a new handle). Before the
/// per-domain limits, each map took hypervisor heap nobody was charged for: a few such 16 MiB
/// domains exhausted the 1 MiB heap and the hypervisor panicked (`memory allocation ...
/// failed`) while mapping or at teardown. Now each domain's maptrack stops at its limit with
/// `GNTST_no_space` and teardown allocates nothing. `maps=<n>` tries n maps (default 10000).
pub fn grant_self_map(line: &str) {
    let name = "grant-self-map-exhaustion";
    let want: u32 = pv_guest::cmdline_param(line, "maps", 10_000);
    let (mapped, refused) = match map_own_grant_until_refused(want) {
        Ok(r) => r,
        Err(e) => return println!("ATTACK {name}: FAIL {e}"),
    };
    // Still a working domain at its limit: a port and a hypercall.
    let alive = guest::evtchn_alloc_unbound(DomId(0)).is_ok() && guest::xen_version(0).is_ok();
    println!("ATTACK {name}: {mapped} maps held, domain still working: {alive}");
    report(
        name,
        match refused {
            Some(status) => Ok(format!("{status} after {mapped} maps")),
            None => Err(format!("all {mapped} maps made")),
        },
    );
    // The maps stay: teardown must take them all down without allocating.
}
