//! Single-domain micro-benchmarks: a null hypercall, a loopback event, a yield with nothing
//! else to run (`test=bench`; with `floor=1` also the syscall floor probe), and page-table
//! updates (`test=mmubench`). They run the same on real Xen, except the floor probe, so the
//! figures compare directly (`tests/src/bin/bench-hv.rs`).

use hypercall_abi::guest;
use pv_guest::bench::{bench_line, measure};
use pv_guest::println;

use super::run::Test::{self, Run};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[("bench", Run(bench)), ("mmubench", Run(mmu_bench))];

/// Single-domain micro-benchmarks (they run the same on real Xen, except the floor probe).
pub fn bench() {
    bench_line(
        "null-hypercall",
        measure(21, 2000, || {
            let _ = guest::xen_version(0);
        }),
    );
    if pv_guest::cmdline_value(pv_guest::cmdline(pv_guest::start_info()), "floor").is_some() {
        bench_line(
            "syscall-floor",
            measure(21, 2000, || {
                #[allow(unsafe_code)]
                // SAFETY: the floor probe returns at once (or, where it is off, is an unknown
                // hypercall: -ENOSYS); either way only rax, rcx and r11 change.
                unsafe {
                    core::arch::asm!(
                        "syscall",
                        inout("rax") hypercall_abi::nr::XEN_CORE_FLOOR_PROBE => _,
                        out("rcx") _,
                        out("r11") _,
                    );
                }
            }),
        );
    }
    // Loopback event channel: send on one end, see it pending on the other.
    if let Ok(a) = guest::evtchn_alloc_unbound(hypercall_abi::DomId::SELF_)
        && let Ok(b) = guest::evtchn_bind_interdomain(hypercall_abi::DomId::SELF_, a)
    {
        {
            pv_guest::events::mask(a);
            bench_line(
                "evtchn-send-loopback",
                measure(21, 1000, || {
                    let _ = guest::evtchn_send(b);
                    pv_guest::events::clear(a);
                }),
            );
            let _ = guest::evtchn_close(a);
            let _ = guest::evtchn_close(b);
        }
    }
    bench_line(
        "sched-yield-alone",
        measure(21, 1000, || {
            let _ = guest::sched_yield();
        }),
    );
}

/// The mmu benchmark: a batch of 512 mmu_updates, and a single update_va_mapping.
pub fn mmu_bench() {
    use hypercall_abi::mmu::{MMUEXT_PIN_L1_TABLE, MmuUpdate, MmuextOp, UVMF_INVLPG};
    use hypercall_abi::{DomId, PAddr, VAddr};
    let (Some(table), Some(data)) =
        (pv_guest::memory::pages::alloc_page(), pv_guest::memory::pages::alloc_page())
    else {
        return println!("BENCH mmu: no pages");
    };
    // A scratch L1: empty, mapped read-only, pinned.
    #[allow(unsafe_code)]
    // SAFETY: remaps this kernel's own scratch page read-only, then pins it as an empty L1.
    unsafe {
        let _ = guest::update_va_mapping(
            VAddr(table.va()),
            (table.mfn().0 << 12) | 0x25,
            hypercall_abi::mmu::Uvmf(UVMF_INVLPG),
        );
        let _ =
            guest::mmuext_op(&[MmuextOp::new(MMUEXT_PIN_L1_TABLE, table.mfn().0, 0)], DomId::SELF_);
    }
    let mut reqs = alloc::vec::Vec::with_capacity(512);
    let mut flip = false;
    bench_line(
        "mmu-update-512-batch",
        measure(11, 1, || {
            flip = !flip;
            reqs.clear();
            for i in 0..512u64 {
                let pte = if flip { (data.mfn().0 << 12) | 0x25 } else { 0 };
                reqs.push(MmuUpdate::normal(PAddr((table.mfn().0 << 12) + i * 8), pte));
            }
            #[allow(unsafe_code)]
            // SAFETY: every request targets the pinned scratch L1 and maps this kernel's own page.
            let _ = unsafe { guest::mmu_update(&reqs, DomId::SELF_) };
        }),
    );
    let slot = pv_guest::memory::pages::alloc_slot().expect("slot");
    let mut flip = false;
    bench_line(
        "update-va-mapping",
        measure(21, 100, || {
            flip = !flip;
            let pte = if flip { (data.mfn().0 << 12) | 0x25 } else { 0 };
            #[allow(unsafe_code)]
            // SAFETY: the slot is this kernel's to remap.
            let _ = unsafe {
                guest::update_va_mapping(VAddr(slot), pte, hypercall_abi::mmu::Uvmf(UVMF_INVLPG))
            };
        }),
    );
}
