//! Self-tests a kernel runs when its command line says `test=<name>[+<name>...]`: each checks
//! one promise of the hypervisor from inside a guest and prints `TEST <name>: PASS` or
//! `TEST <name>: FAIL <why>`, which the system tests look for on the serial line.

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::guest::{self, raw};
use hypercall_abi::{Errno, nr};

use crate::arch::TrapFrame;
use crate::println;

fn report(name: &str, result: Result<(), alloc::string::String>) {
    match result {
        Ok(()) => println!("TEST {name}: PASS"),
        Err(why) => println!("TEST {name}: FAIL {why}"),
    }
}

/// Runs the tests named in `list` (separated by '+': QEMU's -initrd splits modules at commas). Unknown names fail.
pub fn run(list: &str) {
    for name in list.split('+').filter(|n| !n.is_empty()) {
        match name {
            "enosys" => report(name, enosys()),
            "efault" => report(name, efault()),
            "exceptions" => report(name, exceptions()),
            "fpu" => report(name, fpu()),
            "privileged" => report(name, privileged()),
            "evtchn" => report(name, evtchn()),
            "bench" => bench(),
            "memory" => report(name, memory()),
            "multicall" => report(name, multicall()),
            "iopl" => report(name, iopl()),
            "mmubench" => mmu_bench(),
            "grantbench" => report(name, crate::drvbench::grant_self()),
            "fault-nohandler" => fault_without_handler(),
            _ => report(name, Err("unknown test".into())),
        }
    }
}

/// An unknown hypercall number answers -ENOSYS.
fn enosys() -> Result<(), alloc::string::String> {
    for number in [99u64, 127] {
        #[allow(unsafe_code)]
        // SAFETY: hypercall 99/127 has no arguments the hypervisor could act on.
        let r = unsafe { raw::hypercall0(number) };
        if r != Errno::ENOSYS.to_ret() {
            return Err(alloc::format!("hypercall {number} returned {r}"));
        }
    }
    Ok(())
}

/// A wild pointer is -EFAULT, and the kernel carries on.
fn efault() -> Result<(), alloc::string::String> {
    let boot_end = crate::mm::boot_region_end(crate::start_info());
    let cases: [(u64, u64); 5] = [
        (0xFFFF_8300_0000_0000, 16), // the hypervisor's direct map
        (0x1000, 16),                // unmapped guest address
        (boot_end - 8, 16),          // starts mapped, runs off the end of the boot mapping
        (0x7FFF_FFFF_FFF8, 16),      // crosses into the non-canonical hole
        (u64::MAX - 4, 16),          // wraps around
    ];
    for (buf, len) in cases {
        #[allow(unsafe_code)]
        // SAFETY: console_io only reads through the pointer; the hypervisor must refuse it.
        let r = unsafe { raw::hypercall3(nr::CONSOLE_IO, 0, len, buf) };
        if r != Errno::EFAULT.to_ret() {
            return Err(alloc::format!("console_io({buf:#x}, {len}) returned {r}"));
        }
    }
    Ok(())
}

pub(crate) static RESUME: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEEN: AtomicU64 = AtomicU64::new(u64::MAX);
static SEEN_ERR: AtomicU64 = AtomicU64::new(0);

/// The exception hook for [`trap_vector!`]: records the vector and error code and resumes
/// after the instruction, if an attempt is armed.
pub(crate) fn resume_hook(frame: &mut TrapFrame) -> bool {
    let resume = RESUME.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return false;
    }
    SEEN.store(frame.vector, Ordering::SeqCst);
    SEEN_ERR.store(frame.error_code, Ordering::SeqCst);
    frame.rip = resume;
    true
}

/// Runs `asm` (an instruction expected to trap) with [`resume_hook`] armed to resume after it;
/// evaluates to the vector seen (`u64::MAX` if nothing trapped). The hook must be installed.
macro_rules! trap_vector {
    ($asm:literal $(, $($arg:tt)*)?) => {{
        $crate::selftest::SEEN.store(u64::MAX, core::sync::atomic::Ordering::SeqCst);
        #[allow(unsafe_code)]
        // SAFETY: the instruction under test traps; the hook resumes at label 2, and the
        // asm declares the registers it touches.
        unsafe {
            core::arch::asm!(
                "lea {tmp}, [rip + 2f]",
                "mov [{resume}], {tmp}",
                $asm,
                "2:",
                resume = in(reg) $crate::selftest::RESUME.as_ptr(),
                tmp = out(reg) _,
                $($($arg)*)?
            );
        }
        $crate::selftest::SEEN.load(core::sync::atomic::Ordering::SeqCst)
    }};
}
pub(crate) use trap_vector;

macro_rules! expect_trap {
    ($vector:expr, $asm:literal $(, $($arg:tt)*)?) => {{
        let what: &str = $asm;
        let seen = trap_vector!($asm $(, $($arg)*)?);
        if seen != $vector {
            return Err(alloc::format!("{what}: expected vector {}, saw {}", $vector, seen as i64));
        }
    }};
}

/// Exceptions reach the kernel's handlers through bounce frames, and `iret` resumes it.
fn exceptions() -> Result<(), alloc::string::String> {
    crate::traps::set_exception_hook(resume_hook);
    expect_trap!(3, "int3");
    expect_trap!(6, "ud2");
    expect_trap!(0, "xor edx, edx\n xor eax, eax\n div eax", out("eax") _, out("edx") _);
    expect_trap!(14, "mov {x}, [{addr}]", addr = in(reg) 0x10_u64, x = out(reg) _);
    if SEEN_ERR.load(Ordering::SeqCst) & 1 != 0 {
        return Err("page fault on an unmapped page reported present".into());
    }
    expect_trap!(13, "cli");
    // int 0x80 at a vector with no DPL-3 handler is a #GP the kernel sees.
    expect_trap!(13, "int 0x80");
    Ok(())
}

/// Privileged instructions in a guest are its own #GP (or #UD), never the hypervisor's.
fn privileged() -> Result<(), alloc::string::String> {
    crate::traps::set_exception_hook(resume_hook);
    expect_trap!(13, "hlt");
    expect_trap!(13, "mov {x}, cr3", x = out(reg) _);
    expect_trap!(13, "mov cr3, {x}", x = in(reg) 0u64);
    expect_trap!(13, "wrmsr", in("ecx") 0xC000_0082u32, in("eax") 0, in("edx") 0);
    expect_trap!(13, "in al, 0x60", out("al") _);
    expect_trap!(13, "lgdt [{x}]", x = in(reg) 0u64);
    expect_trap!(13, "invlpg [{x}]", x = in(reg) 0u64);
    expect_trap!(13, "swapgs");
    Ok(())
}

/// SSE registers survive hypercalls and exceptions.
fn fpu() -> Result<(), alloc::string::String> {
    crate::traps::set_exception_hook(resume_hook);
    let pattern: u64 = 0x0123_4567_89AB_CDEF;
    #[allow(unsafe_code)]
    // SAFETY: loads xmm0/xmm15 (not used by this soft-float kernel's own code).
    unsafe {
        core::arch::asm!("movq xmm0, {p}", "movq xmm15, {q}", p = in(reg) pattern, q = in(reg) !pattern);
    }
    for _ in 0..10 {
        let _ = guest::xen_version(0);
        let _ = guest::console_io_write(b"");
    }
    expect_trap!(3, "int3");
    let (a, b): (u64, u64);
    #[allow(unsafe_code)]
    // SAFETY: reads the registers written above.
    unsafe {
        core::arch::asm!("movq {a}, xmm0", "movq {b}, xmm15", a = out(reg) a, b = out(reg) b);
    }
    if a != pattern || b != !pattern {
        return Err(alloc::format!("xmm0 {a:#x} xmm15 {b:#x}"));
    }
    Ok(())
}

/// Faults with no handler installed: the hypervisor must crash this domain alone.
fn fault_without_handler() {
    println!("TEST fault-nohandler: removing the trap table and faulting");
    crate::traps::uninstall();
    #[allow(unsafe_code)]
    // SAFETY: deliberately raises #UD; the hypervisor is expected to crash this domain.
    unsafe {
        core::arch::asm!("ud2");
    }
    println!("TEST fault-nohandler: FAIL still running");
}

/// Bad port numbers, foreign ports and impossible bindings are errnos and nothing else.
fn evtchn() -> Result<(), alloc::string::String> {
    use hypercall_abi::event_channel::{EvtchnStatusDetail, VIRQ_TIMER, Virq};
    use hypercall_abi::{DomId, EvtchnPort};
    let expect =
        |what: &str, r: Result<u64, Errno>, want: Errno| -> Result<(), alloc::string::String> {
            match r {
                Err(e) if e == want => Ok(()),
                other => Err(alloc::format!("{what}: expected {want:?}, got {other:?}")),
            }
        };
    for bad in [0u32, 1000, 4095, 4096, u32::MAX] {
        expect("send", guest::evtchn_send(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("close", guest::evtchn_close(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("unmask", guest::evtchn_unmask(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("bind_vcpu", guest::evtchn_bind_vcpu(EvtchnPort(bad), 0), Errno::EINVAL)?;
    }
    expect(
        "status of 4096",
        guest::evtchn_status(DomId::SELF_, EvtchnPort(4096)).map(|_| 0),
        Errno::EINVAL,
    )?;
    let closed = guest::evtchn_status(DomId::SELF_, EvtchnPort(1000))
        .map_err(|e| alloc::format!("status: {e:?}"))?;
    if closed.detail() != EvtchnStatusDetail::Closed {
        return Err(alloc::format!("unused port reads {:?}", closed.detail()));
    }
    expect(
        "bind_virq 99",
        guest::evtchn_bind_virq(Virq(99), 0).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    expect(
        "bind_virq vcpu 7",
        guest::evtchn_bind_virq(Virq(VIRQ_TIMER), 7).map(|p| p.0.into()),
        Errno::ENOENT,
    )?;
    expect(
        "VIRQ_TIMER twice",
        guest::evtchn_bind_virq(Virq(VIRQ_TIMER), 0).map(|p| p.0.into()),
        Errno::EEXIST,
    )?;
    let is_dom0 = crate::start_info().is_privileged();
    if !is_dom0 {
        // Someone else's ports are not ours to look at or to open.
        expect(
            "status of dom0",
            guest::evtchn_status(DomId(0), EvtchnPort(1)).map(|_| 0),
            Errno::EPERM,
        )?;
        let mut op = hypercall_abi::event_channel::EvtchnAllocUnbound {
            dom: DomId(0),
            remote_dom: DomId(0),
            port: EvtchnPort(0),
        };
        #[allow(unsafe_code)]
        // SAFETY: the op matches EVTCHNOP_alloc_unbound.
        let r = unsafe {
            guest::event_channel_op(hypercall_abi::event_channel::EVTCHNOP_ALLOC_UNBOUND, &mut op)
        };
        expect("alloc_unbound in dom0", r, Errno::EPERM)?;
    }
    // Binding to a port nobody offered us.
    expect(
        "bind to dom0 port 1",
        guest::evtchn_bind_interdomain(DomId(0), EvtchnPort(1)).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    expect(
        "bind to a missing domain",
        guest::evtchn_bind_interdomain(DomId(999), EvtchnPort(1)).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    // A loopback channel works end to end, and closing it twice is EINVAL.
    let a =
        guest::evtchn_alloc_unbound(DomId::SELF_).map_err(|e| alloc::format!("alloc: {e:?}"))?;
    let b = guest::evtchn_bind_interdomain(DomId::SELF_, a)
        .map_err(|e| alloc::format!("bind: {e:?}"))?;
    crate::events::clear(a);
    guest::evtchn_send(b).map_err(|e| alloc::format!("send: {e:?}"))?;
    if !crate::events::is_pending(a) {
        return Err("loopback send did not reach the other end".into());
    }
    guest::evtchn_close(a).map_err(|e| alloc::format!("close: {e:?}"))?;
    expect("double close", guest::evtchn_close(a), Errno::EINVAL)?;
    guest::evtchn_close(b).map_err(|e| alloc::format!("close b: {e:?}"))?;
    Ok(())
}

/// Median over `batches` of the mean cost of `iters` runs of `f`, in TSC cycles.
pub fn measure(batches: usize, iters: u64, mut f: impl FnMut()) -> u64 {
    let mut per = alloc::vec::Vec::with_capacity(batches);
    for _ in 0..batches {
        let t0 = crate::arch::rdtsc();
        for _ in 0..iters {
            f();
        }
        per.push((crate::arch::rdtsc() - t0) / iters);
    }
    per.sort_unstable();
    per[per.len() / 2]
}

/// Prints one benchmark figure.
pub fn bench_line(name: &str, cycles: u64) {
    println!("BENCH {name}: median {cycles} cycles ({} ns)", crate::time::cycles_to_ns(cycles));
}

/// Single-domain micro-benchmarks (they run the same on real Xen, except the floor probe).
fn bench() {
    bench_line(
        "null-hypercall",
        measure(21, 2000, || {
            let _ = guest::xen_version(0);
        }),
    );
    if crate::cmdline_value(crate::cmdline(crate::start_info()), "floor").is_some() {
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
            crate::events::mask(a);
            bench_line(
                "evtchn-send-loopback",
                measure(21, 1000, || {
                    let _ = guest::evtchn_send(b);
                    crate::events::clear(a);
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

/// One XENMEM reservation op (`increase`/`decrease_reservation`, `populate_physmap`) over
/// `extents`: frame numbers given, or pseudo-physical frames to fill; returns how many extents
/// were done.
pub(crate) fn reservation(
    cmd: u32,
    extents: &mut [u64],
    extent_order: u32,
    domid: hypercall_abi::DomId,
) -> Result<u64, Errno> {
    let mut r = hypercall_abi::memory::XenMemoryReservation {
        extent_start: hypercall_abi::GuestHandle::from_raw(extents.as_mut_ptr() as u64),
        nr_extents: extents.len() as u64,
        extent_order,
        mem_flags: 0,
        domid,
        _pad: [0; 6],
    };
    #[allow(unsafe_code)]
    // SAFETY: `r` is the reservation struct and names `extents`, live for the call. A frame
    // given back stays alive while anything still maps it (the hypervisor's reference rules),
    // and frames gained are not mapped until the caller maps them.
    unsafe {
        guest::memory_op(cmd, &mut r)
    }
}

/// Ballooning: give pages back, get them back, and the reservation follows.
fn memory() -> Result<(), alloc::string::String> {
    use hypercall_abi::memory::*;
    use hypercall_abi::mmu::{UVMF_INVLPG, Uvmf};
    use hypercall_abi::{DomId, VAddr};
    let si = crate::start_info();
    let me = DomId::SELF_;
    let current =
        |what: &str| guest::current_reservation(me).map_err(|e| alloc::format!("{what}: {e:?}"));
    let start = current("current_reservation")?;
    if start != si.nr_pages {
        return Err(alloc::format!("current_reservation {start} != nr_pages {}", si.nr_pages));
    }
    let max = guest::maximum_reservation(me).map_err(|e| alloc::format!("max: {e:?}"))?;
    if max < start {
        return Err(alloc::format!("maximum_reservation {max} < current {start}"));
    }
    let mut map = [E820Entry::default(); 2];
    let n = guest::memory_map(&mut map).map_err(|e| alloc::format!("memory_map: {e:?}"))?;
    let (size, kind) = (map[0].size, map[0].kind);
    if n != 1 || size != si.nr_pages * 4096 || kind != E820_RAM {
        return Err(alloc::format!("memory_map {n} entries, first {size:#x} type {kind}"));
    }
    let mp = guest::machphys_mapping().map_err(|e| alloc::format!("machphys_mapping: {e:?}"))?;
    if mp.v_start != hypercall_abi::arch::MACH2PHYS_VIRT_START {
        return Err(alloc::format!("M2P at {:#x}", mp.v_start));
    }
    // Balloon down 16 pages: unmap each, then give the frames back.
    let pages: alloc::vec::Vec<crate::mm::OwnPage> =
        (0..16).map_while(|_| crate::mm::alloc_page()).collect();
    if pages.len() < 16 {
        // The reservation below names 16 extents: never pass fewer.
        return Err(alloc::format!("only {} free pages for the balloon test", pages.len()));
    }
    let mut frames: alloc::vec::Vec<u64> = pages.iter().map(|p| p.mfn().0).collect();
    for p in &pages {
        #[allow(unsafe_code)]
        // SAFETY: the page is this kernel's and unused; unmapping it loses nothing.
        unsafe { guest::update_va_mapping(VAddr(p.va()), 0, Uvmf(UVMF_INVLPG)) }
            .map_err(|e| alloc::format!("unmap: {e:?}"))?;
    }
    let gone = reservation(XENMEM_DECREASE_RESERVATION, &mut frames, 0, me)
        .map_err(|e| alloc::format!("decrease: {e:?}"))?;
    let after = current("after decrease")?;
    if gone != 16 || after != start - 16 {
        return Err(alloc::format!("decrease released {gone}, reservation {start} -> {after}"));
    }
    // Giving back a frame that is no longer ours is refused (0 extents).
    let again = reservation(XENMEM_DECREASE_RESERVATION, &mut frames, 0, me)
        .map_err(|e| alloc::format!("decrease again: {e:?}"))?;
    if again != 0 {
        return Err(alloc::format!("released {again} frames twice"));
    }
    // Balloon up: populate the same pseudo-physical frames, map the new machine frames back.
    let mut pfns: alloc::vec::Vec<u64> =
        pages.iter().map(|p| (p.va() - crate::arch::VIRT_BASE) >> 12).collect();
    let got = reservation(XENMEM_POPULATE_PHYSMAP, &mut pfns, 0, me)
        .map_err(|e| alloc::format!("populate: {e:?}"))?;
    if got != 16 || current("after populate")? != start {
        return Err(alloc::format!("populate gave {got}"));
    }
    for (p, &mfn) in pages.iter().zip(&pfns) {
        if crate::shared::m2p_entry(mfn) != (p.va() - crate::arch::VIRT_BASE) >> 12 {
            return Err("M2P not updated for a populated frame".into());
        }
        #[allow(unsafe_code)]
        // SAFETY: maps a frame populate_physmap just gave this kernel at its own VA.
        unsafe { guest::update_va_mapping(VAddr(p.va()), (mfn << 12) | 0x67, Uvmf(UVMF_INVLPG)) }
            .map_err(|e| alloc::format!("remap: {e:?}"))?;
        let page = p.shared();
        if page.u64_at(0).load(core::sync::atomic::Ordering::Relaxed) != 0 {
            return Err("populated page not zeroed".into());
        }
        page.u64_at(8).store(0x1234, core::sync::atomic::Ordering::Relaxed);
    }
    // Beyond the ceiling, nothing is given.
    let mut one = [0u64];
    if max == start {
        let n = reservation(XENMEM_INCREASE_RESERVATION, &mut one, 0, me)
            .map_err(|e| alloc::format!("increase: {e:?}"))?;
        if n != 0 {
            return Err(alloc::format!("increase beyond the ceiling gave {n}"));
        }
    }
    if reservation(XENMEM_INCREASE_RESERVATION, &mut one, 9, me) != Err(Errno::EINVAL) {
        return Err("a 2 MiB extent was not refused".into());
    }
    Ok(())
}

/// Several hypercalls in one, each with its own result.
fn multicall() -> Result<(), alloc::string::String> {
    use hypercall_abi::multicall::MulticallEntry;
    let mut e = [
        MulticallEntry { op: nr::XEN_VERSION, result: 0, args: [0; 6] },
        MulticallEntry { op: nr::CONSOLE_IO, result: 0, args: [0, 0, 0, 0, 0, 0] },
        MulticallEntry { op: 99, result: 0, args: [0; 6] },
        MulticallEntry { op: nr::MULTICALL, result: 0, args: [0; 6] },
    ];
    #[allow(unsafe_code)]
    // SAFETY: entries are harmless calls; the hypervisor fills in their results.
    unsafe { guest::multicall(&mut e) }.map_err(|e| alloc::format!("multicall: {e:?}"))?;
    let want = [(4u64 << 16) | 17, 0, Errno::ENOSYS.to_ret() as u64, Errno::EINVAL.to_ret() as u64];
    for (i, (got, want)) in e.iter().map(|x| x.result).zip(want).enumerate() {
        if got != want {
            return Err(alloc::format!("entry {i}: {:#x} != {want:#x}", got));
        }
    }
    Ok(())
}

/// Port I/O: #GP until dom0 raises its IOPL, then emulated, except the hypervisor's ports.
fn iopl() -> Result<(), alloc::string::String> {
    use hypercall_abi::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};
    crate::traps::set_exception_hook(resume_hook);
    expect_trap!(13, "in eax, dx", in("dx") 0xCFCu16, out("eax") _);
    let mut op = PhysdevSetIopl { iopl: 1 };
    #[allow(unsafe_code)]
    // SAFETY: the op matches PHYSDEVOP_set_iopl.
    let r = unsafe { guest::physdev_op(PHYSDEVOP_SET_IOPL, &mut op) };
    if !crate::start_info().is_privileged() {
        return if r == Err(Errno::EPERM) {
            Ok(())
        } else {
            Err(alloc::format!("a domU set its IOPL: {r:?}"))
        };
    }
    r.map_err(|e| alloc::format!("set_iopl: {e:?}"))?;
    // PCI configuration space: the host bridge's vendor id is Intel's on QEMU's machines.
    let id: u32;
    #[allow(unsafe_code)]
    // SAFETY: emulated port I/O to the PCI configuration ports.
    unsafe {
        core::arch::asm!("out dx, eax", "mov dx, 0xCFC", "in eax, dx", inout("dx") 0xCF8u16 => _, inout("eax") 0x8000_0000u32 => id);
    }
    if id & 0xFFFF != 0x8086 {
        return Err(alloc::format!("PCI 00:00.0 id {id:#x}"));
    }
    // The hypervisor's own console port stays out of reach.
    expect_trap!(13, "out dx, al", in("dx") 0x3F8u16, in("al") b'!');
    Ok(())
}

/// The mmu benchmark: a batch of 512 mmu_updates, and a single update_va_mapping.
fn mmu_bench() {
    use hypercall_abi::mmu::{MMUEXT_PIN_L1_TABLE, MmuUpdate, MmuextOp, UVMF_INVLPG, Uvmf};
    use hypercall_abi::{DomId, PAddr, VAddr};
    let (Some(table), Some(data)) = (crate::mm::alloc_page(), crate::mm::alloc_page()) else {
        return println!("BENCH mmu: no pages");
    };
    // A scratch L1: empty, mapped read-only, pinned.
    #[allow(unsafe_code)]
    // SAFETY: remaps this kernel's own scratch page read-only, then pins it as an empty L1.
    unsafe {
        let _ = guest::update_va_mapping(
            VAddr(table.va()),
            (table.mfn().0 << 12) | 0x25,
            Uvmf(UVMF_INVLPG),
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
    let slot = crate::mm::alloc_slot().expect("slot");
    let mut flip = false;
    bench_line(
        "update-va-mapping",
        measure(21, 100, || {
            flip = !flip;
            let pte = if flip { (data.mfn().0 << 12) | 0x25 } else { 0 };
            #[allow(unsafe_code)]
            // SAFETY: the slot is this kernel's to remap.
            let _ = unsafe { guest::update_va_mapping(VAddr(slot), pte, Uvmf(UVMF_INVLPG)) };
        }),
    );
}
