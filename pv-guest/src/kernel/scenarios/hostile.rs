//! The hostile guest (`scenario=hostile`): one attack at a time on the hypervisor's isolation,
//! each reported as `ATTACK <name>: REFUSED <how>` or `ATTACK <name>: SUCCEEDED <what>`. A
//! second domain (`scenario=victim`) checksums its memory before and after; the system test
//! asserts every attack was refused and the victim's memory did not change.

use alloc::format;
use alloc::string::{String, ToString};
use core::sync::atomic::Ordering;

use hypercall_abi::guest::{self, raw};
use hypercall_abi::memory::XENMEM_DECREASE_RESERVATION;
use hypercall_abi::mmu::{
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MmuUpdate, MmuextOp,
};
use hypercall_abi::{DomId, Errno, Mfn, PAddr, nr};

use pv_guest::memory::{pages, shared};
use pv_guest::{println, time};

use crate::kernel::selftest::memory::reservation;
use crate::kernel::selftest::trap::{resume_hook, trap_vector};

pub(super) const DATA: u64 = 0x67; // present, rw, user, accessed, dirty

pub(super) fn report(name: &str, refused: Result<String, String>) {
    match refused {
        Ok(how) => println!("ATTACK {name}: REFUSED {how}"),
        Err(what) => println!("ATTACK {name}: SUCCEEDED {what}"),
    }
}

/// One PTE write through mmu_update at the L1 slot of `va`.
pub(super) fn write_pte(va: u64, pte: u64) -> Result<u64, Errno> {
    let (l1, idx) = pages::l1_slot_of(va).ok_or(Errno::EINVAL)?;
    let req = [MmuUpdate::normal(PAddr((l1.0 << 12) + idx as u64 * 8), pte)];
    #[allow(unsafe_code)]
    // SAFETY: the request names this kernel's own L1; the hypervisor validates it.
    let (r, _) = unsafe { guest::mmu_update(&req, DomId::SELF_) };
    r
}

fn refused(r: Result<u64, Errno>) -> Result<String, String> {
    match r {
        Err(e) => Ok(e.name().unwrap_or("errno").to_string()),
        Ok(v) => Err(format!("returned {v}")),
    }
}

/// Whether `mfn` is this domain's to map: its own memory, and the hypervisor pages it shares
/// (shared_info, its grant table).
fn is_own(mfn: u64) -> bool {
    let si = pv_guest::start_info();
    let pfn = shared::m2p_entry(mfn);
    shared::p2m_entry(si, pfn) == Some(mfn)
        || mfn == si.shared_info.frame().0
        || pv_guest::grant::table_frame().is_some_and(|f| f.0 == mfn)
}

/// Runs every attack; returns when done.
pub fn run() {
    let slot = pages::alloc_slot().expect("a mapping slot");
    // 1. The hypervisor's own image (machine frame 0x200: physical 2 MiB).
    report("map-hypervisor-frame", refused(write_pte(slot, (0x200 << 12) | DATA)));
    report("map-hypervisor-frame-readonly", refused(write_pte(slot, (0x200 << 12) | 0x25)));
    // 2. Every other domain's frames: sweep RAM, skipping our own.
    let max = guest::maximum_ram_page().unwrap_or(0);
    let step = (max / 4096).max(1);
    let (mut tried, mut mapped) = (0u64, 0u64);
    let mut mfn = 0;
    while mfn <= max {
        if !is_own(mfn) {
            tried += 1;
            if write_pte(slot, (mfn << 12) | 0x25).is_ok() {
                mapped += 1;
                let _ = write_pte(slot, 0);
            }
        }
        mfn += step;
    }
    report(
        "map-foreign-frames",
        if mapped == 0 {
            Ok(format!("all {tried} frames"))
        } else {
            Err(format!("{mapped} of {tried} mapped"))
        },
    );
    // 3. A writable mapping of our own page tables (the L1 mapping the slot, and the L4).
    let (l1, _) = pages::l1_slot_of(slot).expect("slot is mapped");
    report("writable-own-l1", refused(write_pte(slot, (l1.0 << 12) | DATA)));
    let l4 = pages::l4_mfn().expect("L4");
    report("writable-own-l4", refused(write_pte(slot, (l4.0 << 12) | DATA)));
    // Read-only is allowed (guests read their tables): proves the path works at all.
    match write_pte(slot, (l1.0 << 12) | 0x25) {
        Ok(_) => println!("ATTACK control-readonly-own-l1: allowed (as it should be)"),
        Err(e) => println!("ATTACK control-readonly-own-l1: unexpectedly refused {e:?}"),
    }
    let _ = write_pte(slot, 0);
    // 4. Pinning tables with invalid entries.
    // Each table is written, then mapped read-only (a frame mapped writable could not become a
    // page table at all), so the pin reaches the entries themselves.
    let page = pages::alloc_page().expect("a page");
    let bad = page.shared();
    for i in 0..512 {
        bad.u64_at(i * 8).store((0x200 << 12) | 0x27, Ordering::Relaxed);
    }
    let _ = write_pte(page.va(), (page.mfn().0 << 12) | 0x25);
    report("pin-l1-mapping-hypervisor", refused(pin(MMUEXT_PIN_L1_TABLE, page.mfn())));
    let page2 = pages::alloc_page().expect("a page");
    for i in 0..512 {
        page2.shared().u64_at(i * 8).store(0x27 | 0x80, Ordering::Relaxed); // large pages
    }
    let _ = write_pte(page2.va(), (page2.mfn().0 << 12) | 0x25);
    report("pin-l2-with-superpages", refused(pin(MMUEXT_PIN_L2_TABLE, page2.mfn())));
    // 5. Loading a CR3 that was never validated (garbage, a hypervisor frame).
    report(
        "new-baseptr-garbage",
        refused(mmuext(MmuextOp::new(MMUEXT_NEW_BASEPTR, page.mfn().0, 0))),
    );
    report("new-baseptr-hypervisor", refused(mmuext(MmuextOp::new(MMUEXT_NEW_BASEPTR, 0x200, 0))));
    // 6. Freeing a page still in use as a page table.
    let done = reservation(XENMEM_DECREASE_RESERVATION, &mut [l1.0], 0, DomId::SELF_);
    report(
        "free-page-table-in-use",
        match done {
            Ok(0) => Ok("0 extents released".into()),
            Err(e) => Ok(e.name().unwrap_or("errno").to_string()),
            Ok(n) => Err(format!("{n} extents released")),
        },
    );
    // 7. Wild pointers and huge counts to every hypercall.
    wild_pointers();
    // 8. Privileged instructions are reflected to us as #GP.
    privileged();
    // 9. Devices: MMIO, physical IRQs, the hypervisor's own device pages.
    devices(slot);
    // Still alive, tables intact: prove it by a hypercall and a page-table walk.
    let ok = guest::xen_version(0).is_ok() && pages::l1_slot_of(slot).is_some();
    println!("ATTACK done: hostile domain still running: {ok}");
}

/// Refused with exactly Xen's errno `want`.
fn refused_with(r: Result<u64, Errno>, want: Errno) -> Result<String, String> {
    match r {
        Err(e) if e == want => Ok(e.name().unwrap_or("errno").to_string()),
        Err(e) => Err(format!("refused, but with {e:?} where Xen says {want:?}")),
        Ok(v) => Err(format!("returned {v}")),
    }
}

/// What dom0 does with devices, tried by a domU: each refused with the errno Xen gives.
fn devices(slot: u64) {
    // Device memory (a PCI BAR's page, the IOAPIC, the local APIC), through DOMID_IO as
    // dom0 maps it and as a plain entry: the domain has no I/O memory.
    let (l1, idx) = pages::l1_slot_of(slot).expect("slot is mapped");
    let io_map = |mfn: u64, dom: DomId| {
        let req = [MmuUpdate::normal(PAddr((l1.0 << 12) + idx as u64 * 8), (mfn << 12) | 0x7F)];
        #[allow(unsafe_code)]
        // SAFETY: the request names this kernel's own L1 slot; the hypervisor refuses it.
        let (r, _) = unsafe { guest::mmu_update(&req, dom) };
        r
    };
    report("map-mmio-domid-io", refused_with(io_map(0xFE000, DomId::IO), Errno::EPERM));
    report("map-mmio", refused_with(io_map(0xFE000, DomId::SELF_), Errno::EPERM));
    report("map-ioapic", refused_with(io_map(0xFEC00, DomId::IO), Errno::EPERM));
    report("map-local-apic", refused_with(io_map(0xFEE00, DomId::IO), Errno::EPERM));
    // DOMID_IO names no RAM, not even our own page.
    let own = pages::virt_to_mfn(pv_guest::start_info().pt_base.0 + 4096 * 8).map_or(0, |m| m.0);
    report("map-own-ram-as-domid-io", refused_with(io_map(own, DomId::IO), Errno::EPERM));
    let _ = write_pte(slot, 0);
    // Physical IRQs: QEMU's PCI line (GSI 11) and the timer's (2).
    let map = guest::physdev_map_pirq_gsi(DomId::SELF_, 11, Some(11)).map(u64::from);
    report("physdev-map-pirq", refused_with(map, Errno::EPERM));
    let map0 = guest::physdev_map_pirq_gsi(DomId(0), 2, None).map(u64::from);
    report("physdev-map-pirq-for-dom0", refused_with(map0, Errno::EPERM));
    report(
        "physdev-setup-gsi",
        refused_with(guest::physdev_setup_gsi(11, true, true), Errno::EPERM),
    );
    report(
        "physdev-unmap-pirq",
        refused_with(guest::physdev_unmap_pirq(DomId::SELF_, 11), Errno::EPERM),
    );
    let bind = guest::evtchn_bind_pirq(11, 0).map(|p| u64::from(p.0));
    report("evtchn-bind-pirq", refused_with(bind, Errno::EPERM));
    report("physdev-eoi", refused_with(guest::physdev_eoi(11), Errno::EINVAL));
}

fn pin(cmd: u32, mfn: Mfn) -> Result<u64, Errno> {
    mmuext(MmuextOp::new(cmd, mfn.0, 0))
}

pub(super) fn mmuext(op: MmuextOp) -> Result<u64, Errno> {
    #[allow(unsafe_code)]
    // SAFETY: a single op naming frames; the hypervisor validates it.
    let (r, _) = unsafe { guest::mmuext_op(&[op], DomId::SELF_) };
    r
}

/// Every implemented hypercall with pointers into the hypervisor, into nothing, and counts of
/// 2^32 - 1 over a one-page array followed by unmapped memory.
fn wild_pointers() {
    const HV: u64 = 0xFFFF_8300_0000_0000;
    const NOWHERE: u64 = 0x10;
    // A page of harmless requests, then a hole: a huge count must fault at the hole.
    let hole = pages::alloc_slot().expect("slot");
    let _ = write_pte(hole, 0);
    let arr_page = pages::alloc_page().expect("page");
    for i in 0..512 {
        arr_page.shared().u64_at(i * 8).store(0xFFFF, Ordering::Relaxed); // op 0xFFFF: ENOSYS
    }
    let cases: &[(u64, [u64; 5])] = &[
        (nr::SET_TRAP_TABLE, [HV, 0, 0, 0, 0]),
        (nr::MMU_UPDATE, [HV, 1, 0, 0x7FF0, 0]),
        (nr::MMU_UPDATE, [arr_page.va(), 0xFFFF_FFFF, NOWHERE, 0x7FF0, 0]),
        (nr::SET_CALLBACKS, [HV, HV, HV, 0, 0]),
        (nr::STACK_SWITCH, [0xe02b, HV, 0, 0, 0]),
        (nr::UPDATE_VA_MAPPING, [HV, 0x200 << 12 | 0x27, 2, 0, 0]),
        (nr::MEMORY_OP, [0, HV, 0, 0, 0]),
        (nr::MEMORY_OP, [6, NOWHERE, 0, 0, 0]),
        (nr::MULTICALL, [arr_page.va(), 0xFFFF_FFFF, 0, 0, 0]),
        (nr::MULTICALL, [HV, 4, 0, 0, 0]),
        (nr::XEN_VERSION, [6, HV, 0, 0, 0]),
        (nr::CONSOLE_IO, [0, 0xFFFF_FFFF, HV, 0, 0]),
        (nr::CONSOLE_IO, [1, 0xFFFF_FFFF, HV, 0, 0]),
        (nr::GRANT_TABLE_OP, [0, HV, 0xFFFF_FFFF, 0, 0]),
        (nr::GRANT_TABLE_OP, [2, NOWHERE, 1, 0, 0]),
        (nr::VM_ASSIST, [0, 99, 0, 0, 0]),
        (nr::UPDATE_VA_MAPPING_OTHERDOMAIN, [HV, 0, 0, 0, 0]),
        (nr::VCPU_OP, [8, 0, HV, 0, 0]),
        (nr::VCPU_OP, [10, 0, HV, 0, 0]),
        (nr::VCPU_OP, [1, 0xFFFF_FFFF, 0, 0, 0]),
        (nr::SET_SEGMENT_BASE, [0, 0x8000_0000_0000_0000, 0, 0, 0]),
        (nr::MMUEXT_OP, [HV, 1, HV, 0x7FF0, 0]),
        (nr::MMUEXT_OP, [arr_page.va(), 0xFFFF_FFFF, 0, 0x7FF0, 0]),
        (nr::SCHED_OP, [3, HV, 0, 0, 0]),
        (nr::SCHED_OP, [2, HV, 0, 0, 0]),
        (nr::CALLBACK_OP, [0, HV, 0, 0, 0]),
        (nr::EVENT_CHANNEL_OP, [4, HV, 0, 0, 0]),
        (nr::EVENT_CHANNEL_OP, [99, NOWHERE, 0, 0, 0]),
        (nr::PHYSDEV_OP, [6, HV, 0, 0, 0]),
        (nr::SYSCTL, [HV, 0, 0, 0, 0]),
        (nr::DOMCTL, [HV, 0, 0, 0, 0]),
    ];
    let mut bad = String::new();
    for (n, a) in cases {
        #[allow(unsafe_code)]
        // SAFETY: deliberately hostile arguments; the hypervisor must reject them. The pointers
        // are not ours, or the requests are harmless, with two exceptions: handlers may be
        // cleared (reinstalled below), and the huge multicall over `arr_page` writes its
        // results into that page and the free own pages above it up to `hole`, which nothing
        // else uses (pages handed out later are no longer guaranteed zero).
        let r = unsafe { raw::hypercall5(*n, a[0], a[1], a[2], a[3], a[4]) };
        if r >= 0 && !matches!(*n, nr::MULTICALL | nr::MEMORY_OP) {
            bad.push_str(&format!(" {}->{r}", nr::name(*n).unwrap_or("?")));
        }
    }
    pv_guest::traps::install();
    report(
        "wild-pointers-and-huge-counts",
        if bad.is_empty() { Ok(format!("{} calls, all errors", cases.len())) } else { Err(bad) },
    );
}

macro_rules! attempt {
    ($name:literal, $asm:literal $(, $($arg:tt)*)?) => {{
        let v = trap_vector!($asm $(, $($arg)*)?);
        report($name, if v == 13 || v == 6 { Ok(format!("#{}", if v == 13 { "GP" } else { "UD" })) } else { Err(format!("vector {}", v as i64)) });
    }};
}

fn privileged() {
    pv_guest::traps::set_exception_hook(resume_hook);
    attempt!("cli", "cli");
    attempt!("hlt", "hlt");
    attempt!("mov-to-cr0", "mov cr0, {x}", x = in(reg) 0x8000_0001u64);
    attempt!("mov-to-cr3", "mov cr3, {x}", x = in(reg) 0u64);
    attempt!("wrmsr-lstar", "wrmsr", in("ecx") 0xC000_0082u32, in("eax") 0, in("edx") 0);
    attempt!("in-port", "in al, 0x60", out("al") _);
    attempt!("out-port", "out 0x80, al", in("al") 0u8);
    attempt!("lgdt", "lgdt [{x}]", x = in(reg) 0u64);
    attempt!("invlpg", "invlpg [{x}]", x = in(reg) 0u64);
}

/// The victim: fills pages with a pattern, checksums them, waits `seconds`, checksums again.
pub fn victim(seconds: u64) {
    let pages: alloc::vec::Vec<pages::OwnPage> =
        (0..64).map_while(|_| pages::alloc_page()).collect();
    let sum = |pages: &[pages::OwnPage]| {
        pages.iter().fold(0xCBF2_9CE4_8422_2325u64, |acc, p| {
            (0..512).fold(acc, |h, i| {
                (h ^ p.shared().u64_at(i * 8).load(Ordering::Relaxed))
                    .wrapping_mul(0x0000_0100_0000_01B3)
            })
        })
    };
    for (n, p) in pages.iter().enumerate() {
        for i in 0..512 {
            p.shared().u64_at(i * 8).store((n as u64) << 32 | i as u64, Ordering::Relaxed);
        }
    }
    let before = sum(&pages);
    println!("RESULT victim: before {before:#018x} over {} pages", pages.len());
    time::sleep_ns(seconds * 1_000_000_000);
    let after = sum(&pages);
    println!(
        "RESULT victim: after {after:#018x} {}",
        if before == after { "unchanged" } else { "CHANGED" }
    );
}
