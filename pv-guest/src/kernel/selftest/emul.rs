//! What the hypervisor emulates for a PV kernel, from the kernel's side: writes to its own
//! pinned L1 tables under the `writable_pagetables` assist (`ptwr`), `rdmsr`/`wrmsr`, moves to
//! and from control and debug registers and the debug-register hypercalls (`privregs`), and
//! the forced-emulation CPUID (`cpuid`). Each runs on xen-core and on Xen 4.17 (as dom0);
//! `EMUL same ...` lines must read the same on both, `EMUL info ...` lines are for the log.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use hypercall_abi::mmu::{MmuextOp, UVMF_INVLPG, Uvmf};
use hypercall_abi::vm_assist::{
    VMASST_CMD_DISABLE, VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES,
};
use hypercall_abi::{DomId, Errno, VAddr, guest};
use pv_guest::memory::pages;
use pv_guest::println;

use super::run::Test::{self, Check};
use super::trap::{RESUME, expect_trap, resume_hook, trap_vector};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] =
    &[("ptwr", Check(ptwr)), ("privregs", Check(privregs)), ("cpuid", Check(cpuid))];

/// Runs `asm` that should not trap, with the trap hook armed in case it does; the vector seen
/// (`u64::MAX`: none).
macro_rules! run {
    ($($t:tt)*) => {{
        let v = trap_vector!($($t)*);
        RESUME.store(0, Ordering::SeqCst);
        v
    }};
}

const NX: u64 = 1 << 63;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Writes to a pinned L1 through its read-only mapping, one instruction form at a time.
pub fn ptwr() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    let table = pages::alloc_page().ok_or("no page for the table")?;
    let data = pages::alloc_page().ok_or("no data page")?;
    let p = table.va();
    #[allow(unsafe_code)]
    // SAFETY: the page is this kernel's and unused; it becomes a read-only page table.
    unsafe {
        guest::update_va_mapping(VAddr(p), (table.mfn().0 << 12) | 0x25 | NX, Uvmf(UVMF_INVLPG))
    }
    .map_err(|e| format!("map read-only: {e:?}"))?;
    let pin = [MmuextOp::pin(1, table.mfn()).ok_or("pin op")?];
    #[allow(unsafe_code)]
    // SAFETY: pins an empty table of this kernel's.
    unsafe { guest::mmuext_op(&pin, DomId::SELF_) }.0.map_err(|e| format!("pin: {e:?}"))?;
    let result = ptwr_forms(p, table.mfn().0, data.mfn().0);
    let _ = guest::vm_assist(VMASST_CMD_DISABLE, VMASST_TYPE_WRITABLE_PAGETABLES);
    #[allow(unsafe_code)]
    // SAFETY: unpins the table (emptied by `ptwr_forms`) and maps the page writable again.
    unsafe {
        guest::mmuext_op(&[MmuextOp::unpin(table.mfn())], DomId::SELF_)
            .0
            .map_err(|e| format!("unpin: {e:?}"))?;
        guest::update_va_mapping(VAddr(p), (table.mfn().0 << 12) | 0x67 | NX, Uvmf(UVMF_INVLPG))
            .map_err(|e| format!("map back: {e:?}"))?;
    }
    result
}

fn ptwr_forms(p: u64, table_mfn: u64, data_mfn: u64) -> Result<(), String> {
    // The global bit is the hypervisor's business: Xen sets it on user-accessible guest
    // entries (it flushes global pages at every guest switch), xen-core clears it (a global
    // guest mapping would outlive the switch to another domain). Entries compare without it.
    #[allow(unsafe_code)]
    // SAFETY: reads an entry of the table through its read-only mapping.
    let raw = |i: u64| unsafe { ((p + 8 * i) as *const u64).read_volatile() };
    let entry = |i: u64| raw(i) & !0x100;
    let good = (data_mfn << 12) | 0x67;
    let no_trap =
        |v: u64, what: &str| check(v == u64::MAX, || format!("{what}: vector {}", v as i64));
    // Without the assist, a write is the kernel's own #PF; dom0's are emulated regardless, as
    // on Xen.
    guest::vm_assist(VMASST_CMD_DISABLE, VMASST_TYPE_WRITABLE_PAGETABLES)
        .map_err(|e| format!("assist off: {e:?}"))?;
    let v = run!("mov [{p}], {v}", p = in(reg) p, v = in(reg) good);
    let dom0 = pv_guest::start_info().is_privileged();
    let emulated = v == u64::MAX && entry(0) == good;
    let refused = v == 14 && entry(0) == 0;
    check(if dom0 { emulated } else { refused }, || {
        format!("write without the assist: vector {}, entry {:#x}", v as i64, entry(0))
    })?;
    guest::vm_assist(VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES)
        .map_err(|e| format!("assist on: {e:?}"))?;
    no_trap(run!("mov qword ptr [{p}], 0", p = in(reg) p), "clear")?;

    no_trap(run!("mov [{p}], {v}", p = in(reg) p, v = in(reg) good), "mov r64")?;
    check(entry(0) == good, || format!("mov r64 stored {:#x}", entry(0)))?;
    no_trap(run!("mov qword ptr [{p}], 0", p = in(reg) p), "mov imm32")?;
    check(entry(0) == 0, || format!("mov imm32 stored {:#x}", entry(0)))?;
    let mut old = good;
    no_trap(run!("xchg [{p} + 8], {v}", p = in(reg) p, v = inout(reg) old), "xchg")?;
    check(entry(1) == good && old == 0, || format!("xchg: entry {:#x}, old {old:#x}", entry(1)))?;
    no_trap(run!("lock and byte ptr [{p} + 8], 0xFD", p = in(reg) p), "lock andb")?;
    check(entry(1) == good & !2, || format!("lock andb: {:#x}", entry(1)))?;
    no_trap(run!("lock or byte ptr [{p} + 8], 2", p = in(reg) p), "lock orb")?;
    check(entry(1) == good, || format!("lock orb: {:#x}", entry(1)))?;
    let mut c: u8 = 0;
    no_trap(
        run!("lock btr qword ptr [{p} + 8], 5\n setc {c}", p = in(reg) p, c = out(reg_byte) c),
        "lock btr",
    )?;
    check(c == 1 && entry(1) == good & !0x20, || format!("lock btr: CF {c}, {:#x}", entry(1)))?;
    no_trap(
        run!("btr qword ptr [{p} + 8], 5\n setc {c}", p = in(reg) p, c = out(reg_byte) c),
        "btr",
    )?;
    check(c == 0, || "btr of a clear bit set CF".into())?;
    no_trap(
        run!("lock bts qword ptr [{p} + 8], 5\n setc {c}", p = in(reg) p, c = out(reg_byte) c),
        "lock bts",
    )?;
    check(c == 0 && entry(1) == good, || format!("lock bts: CF {c}, {:#x}", entry(1)))?;
    // cmpxchg compares with the entry as stored (global bit and all).
    let (mut acc, new, mut z) = (raw(1), good & !0x40, 0u8);
    no_trap(
        run!("lock cmpxchg [{p} + 8], {n}\n setz {z}", p = in(reg) p, n = in(reg) new, z = out(reg_byte) z, inout("rax") acc),
        "cmpxchg",
    )?;
    check(z == 1 && entry(1) == new && acc & !0x100 == good, || {
        format!("cmpxchg: ZF {z}, {:#x}", entry(1))
    })?;
    acc = good | 0x40;
    no_trap(
        run!("lock cmpxchg [{p} + 8], {n}\n setz {z}", p = in(reg) p, n = in(reg) 0u64, z = out(reg_byte) z, inout("rax") acc),
        "failing cmpxchg",
    )?;
    check(z == 0 && acc & !0x100 == new && entry(1) == new, || {
        format!("failing cmpxchg: ZF {z}, rax {acc:#x}")
    })?;
    no_trap(run!("and [{p} + 8], {m}", p = in(reg) p, m = in(reg) !0x20u64), "and r64")?;
    check(entry(1) == good & !0x60, || format!("and r64: {:#x}", entry(1)))?;
    no_trap(run!("lock or [{p} + 8], {m}", p = in(reg) p, m = in(reg) 0x60u64), "lock or r64")?;
    check(entry(1) == good, || format!("lock or r64: {:#x}", entry(1)))?;
    no_trap(
        run!("mov dword ptr [{p} + 12], {v:e}", p = in(reg) p, v = in(reg) 0x8000_0000u64),
        "mov r32",
    )?;
    check(entry(1) == good | NX, || format!("mov r32 to the upper half: {:#x}", entry(1)))?;

    // Refused entries, misaligned writes and writes to an L4 stay the kernel's #PF.
    let writable_table = (table_mfn << 12) | 0x67;
    let v = run!("mov [{p} + 16], {v}", p = in(reg) p, v = in(reg) writable_table);
    check(v == 14 && entry(2) == 0, || {
        format!("writable mapping of a page table: vector {}", v as i64)
    })?;
    // The software-available bits 52-62 are the kernel's to keep in an L1 entry, as on Xen.
    let soft = good | (1 << 52);
    let v = run!("mov [{p} + 16], {v}", p = in(reg) p, v = in(reg) soft);
    check(v == u64::MAX && entry(2) == soft, || {
        format!("software bits: vector {}, {:#x}", v as i64, entry(2))
    })?;
    let v = run!("mov [{p} + 16], {v}", p = in(reg) p, v = in(reg) 0u64);
    check(v == u64::MAX && entry(2) == 0, || format!("clearing: vector {}", v as i64))?;
    // A frame that is not the kernel's: refused to a domU (Xen lets dom0 map any machine
    // frame that is not its own, which this frame is on Xen).
    if !dom0 {
        let v = run!("mov [{p} + 16], {v}", p = in(reg) p, v = in(reg) (1u64 << 12) | 0x67);
        check(v == 14 && entry(2) == 0, || format!("someone else's frame: vector {}", v as i64))?;
    }
    let v = run!("mov [{p} + 20], {v}", p = in(reg) p, v = in(reg) 0u64);
    check(v == 14 && entry(2) == 0, || format!("misaligned write: vector {}", v as i64))?;
    let l4 = pv_guest::start_info().pt_base.0;
    let v = run!("mov {t}, [{q}]\n mov [{q}], {t}", q = in(reg) l4, t = out(reg) _);
    check(v == 14, || format!("write to the L4: vector {}", v as i64))?;

    no_trap(run!("mov qword ptr [{p} + 8], 0", p = in(reg) p), "clearing")?;
    check(entry(1) == 0, || "entry not cleared".into())?;
    println!("EMUL same ptwr: 13 forms emulated, 4 refused");
    Ok(())
}

fn rdmsr(msr: u32) -> (u64, u64) {
    let (lo, hi): (u32, u32);
    let v = run!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi);
    (v, (u64::from(hi) << 32) | u64::from(lo))
}

fn wrmsr(msr: u32, val: u64) -> u64 {
    run!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32)
}

fn msrs() -> Result<(), String> {
    const FS: u32 = 0xC000_0100;
    const GS: u32 = 0xC000_0101;
    const SHADOW_GS: u32 = 0xC000_0102;
    for (msr, val) in [(FS, 0x1234_5000u64), (GS, 0xFFFF_FFFF_8765_4000), (SHADOW_GS, 0x7000_0000)]
    {
        let (v, before) = rdmsr(msr);
        check(v == u64::MAX, || format!("rdmsr {msr:#x}: vector {}", v as i64))?;
        check(wrmsr(msr, val) == u64::MAX, || format!("wrmsr {msr:#x}"))?;
        let (_, after) = rdmsr(msr);
        check(wrmsr(msr, before) == u64::MAX && after == val, || {
            format!("{msr:#x} read back {after:#x}")
        })?;
        check(wrmsr(msr, 1 << 63) == 13, || format!("non-canonical {msr:#x} accepted"))?;
    }
    check(rdmsr(0xC000_0082).0 == 13 && wrmsr(0xC000_0082, 0) == 13, || "LSTAR reachable".into())?;
    let (_, efer) = rdmsr(0xC000_0080);
    check(efer & 0xD01 == 0xD01, || format!("EFER {efer:#x}"))?;
    check(wrmsr(0xC000_0080, efer) == u64::MAX, || "writing EFER's own value refused".into())?;
    check(wrmsr(0xC000_0080, efer & !(1 << 11)) == 13, || "EFER.NXE cleared".into())?;
    let (_, apic) = rdmsr(0x1B);
    let (_, misc) = rdmsr(0x1A0);
    let (_, pat) = rdmsr(0x277);
    println!("EMUL same msr: efer {efer:#x} apic_base {apic:#x} misc_enable {misc:#x}");
    println!("EMUL info msr: pat {pat:#x}");
    Ok(())
}

fn read_cr(n: u8) -> u64 {
    let x: u64;
    #[allow(unsafe_code)]
    // SAFETY: a move from a control register, emulated for a PV kernel.
    unsafe {
        match n {
            0 => core::arch::asm!("mov {}, cr0", out(reg) x),
            2 => core::arch::asm!("mov {}, cr2", out(reg) x),
            3 => core::arch::asm!("mov {}, cr3", out(reg) x),
            _ => core::arch::asm!("mov {}, cr4", out(reg) x),
        }
    }
    x
}

fn control_registers() -> Result<(), String> {
    let cr0 = read_cr(0);
    check(cr0 & 8 == 0, || format!("CR0.TS set at start: {cr0:#x}"))?;
    check(run!("mov cr0, {x}", x = in(reg) cr0 | 8) == u64::MAX && read_cr(0) == cr0 | 8, || {
        "CR0.TS not set".into()
    })?;
    check(run!("clts") == u64::MAX && read_cr(0) == cr0, || "clts".into())?;
    expect_trap!(13, "mov cr0, {x}", x = in(reg) cr0 ^ (1 << 16));
    expect_trap!(14, "mov {x}, [{a}]", a = in(reg) 0x10u64, x = out(reg) _);
    check(read_cr(2) == 0x10, || format!("CR2 {:#x} after a fault at 0x10", read_cr(2)))?;
    check(run!("mov cr2, {x}", x = in(reg) 0x5000u64) == u64::MAX && read_cr(2) == 0x5000, || {
        "CR2 write".into()
    })?;
    let l4 = pages::virt_to_mfn(pv_guest::start_info().pt_base.0).ok_or("L4 frame")?;
    check(read_cr(3) == l4.0 << 12, || format!("CR3 {:#x}, L4 at {:#x}", read_cr(3), l4.0 << 12))?;
    let cr4 = read_cr(4);
    check(cr4 & 0x220 == 0x220, || format!("CR4 {cr4:#x} lacks PAE or OSFXSR"))?;
    // PSE, PGE, PCIDE, FSGSBASE, OSXSAVE, SMEP, SMAP, PKE: not the guest's.
    check(cr4 & 0x0075_0090 == 0, || format!("CR4 {cr4:#x}"))?;
    check(
        run!("mov cr4, {x}", x = in(reg) cr4 | 0x80 | 8) == u64::MAX && read_cr(4) == cr4 | 8,
        || format!("CR4 after setting PGE and DE: {:#x}", read_cr(4)),
    )?;
    expect_trap!(6, "mov {x}, dr4", x = out(reg) _);
    check(run!("mov cr4, {x}", x = in(reg) cr4) == u64::MAX, || "CR4 restore".into())?;
    // The hardware's own bits differ (Xen runs with CR0.AM and CR4.MCE set).
    println!("EMUL info cr: cr0 {cr0:#x} cr4 {cr4:#x}");
    Ok(())
}

static WATCHED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn read_dr(n: u8) -> u64 {
    let x: u64;
    #[allow(unsafe_code)]
    // SAFETY: a move from a debug register, emulated for a PV kernel.
    unsafe {
        match n {
            0 => core::arch::asm!("mov {}, dr0", out(reg) x),
            4 => core::arch::asm!("mov {}, dr4", out(reg) x),
            6 => core::arch::asm!("mov {}, dr6", out(reg) x),
            _ => core::arch::asm!("mov {}, dr7", out(reg) x),
        }
    }
    x
}

fn debug_registers() -> Result<(), String> {
    check(read_dr(6) == 0xFFFF_0FF0 && read_dr(7) == 0x400, || {
        format!("DR6 {:#x} DR7 {:#x}", read_dr(6), read_dr(7))
    })?;
    check(read_dr(4) == read_dr(6), || "DR4 does not alias DR6".into())?;
    let addr = WATCHED.as_ptr() as u64;
    check(run!("mov dr0, {x}", x = in(reg) addr) == u64::MAX && read_dr(0) == addr, || {
        "DR0".into()
    })?;
    expect_trap!(13, "mov dr1, {x}", x = in(reg) 0xFFFF_8000_0000_0000u64);
    expect_trap!(13, "mov dr7, {x}", x = in(reg) 0x2000u64);
    // A write watchpoint on WATCHED (L0, write, 8 bytes) is the kernel's #DB.
    check(
        run!("mov dr7, {x}", x = in(reg) 0xD_0001u64) == u64::MAX && read_dr(7) == 0xD_0401,
        || format!("DR7 {:#x}", read_dr(7)),
    )?;
    let v = trap_vector!("mov qword ptr [{a}], 1", a = in(reg) addr);
    RESUME.store(0, Ordering::SeqCst);
    let dr6 = read_dr(6);
    check(run!("mov dr7, {x}", x = in(reg) 0u64) == u64::MAX, || "DR7 clear".into())?;
    check(v == 1 && dr6 & 1 == 1, || format!("watchpoint: vector {}, DR6 {dr6:#x}", v as i64))?;
    check(run!("mov dr6, {x}", x = in(reg) 0u64) == u64::MAX && read_dr(6) == 0xFFFF_0FF0, || {
        "DR6 reset".into()
    })?;
    // The hypercalls validate the same way.
    guest::set_debugreg(0, addr + 8).map_err(|e| format!("set_debugreg: {e:?}"))?;
    check(guest::get_debugreg(0) == Ok(addr + 8), || "get_debugreg(0)".into())?;
    let refused = [
        (guest::set_debugreg(0, 0xFFFF_8000_0000_0000), Errno::EPERM),
        (guest::set_debugreg(7, 1 << 32), Errno::EINVAL),
        (guest::set_debugreg(7, 0x2000), Errno::EPERM),
        (guest::set_debugreg(8, 0), Errno::ENODEV),
        (guest::get_debugreg(8).map(|_| 0), Errno::ENODEV),
    ];
    for (i, (r, want)) in refused.iter().enumerate() {
        check(*r == Err(*want), || format!("debug-register call {i}: {r:?}, expected {want:?}"))?;
    }
    guest::set_debugreg(0, 0).map_err(|e| format!("set_debugreg: {e:?}"))?;
    println!("EMUL same dr: dr6 {dr6:#x}");
    Ok(())
}

/// MSRs, control registers and debug registers, as a PV kernel reaches them.
pub fn privregs() -> Result<(), String> {
    pv_guest::traps::set_exception_hook(resume_hook);
    msrs()?;
    control_registers()?;
    debug_registers()
}

/// The forced-emulation CPUID.
fn cpuid_leaf(leaf: u32, sub: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u64, u32, u32);
    #[allow(unsafe_code)]
    // SAFETY: Xen's forced-emulation prefix; rbx is saved around it (LLVM reserves it).
    unsafe {
        core::arch::asm!(
            "mov {b}, rbx",
            ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2",
            "xchg {b}, rbx",
            b = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") sub => c,
            out("edx") d,
        );
    }
    [a, b as u32, c, d]
}

/// The hypervisor leaves and the features a PV kernel must not see.
pub fn cpuid() -> Result<(), String> {
    for (leaf, sub) in [
        (0, 0),
        (1, 0),
        (7, 0),
        (7, 1),
        (0xD, 0),
        (0xD, 1),
        (0x8000_0001, 0),
        (0x8000_0007, 0),
        (0x8000_0008, 0),
        (0x4000_0000, 0),
        (0x4000_0001, 0),
        (0x4000_0002, 0),
        (0x4000_0003, 0),
        (0x4000_0004, 0),
        (0x4000_0005, 0),
    ] {
        let [a, b, c, d] = cpuid_leaf(leaf, sub);
        let kind = if (0x4000_0000..0x4000_0003).contains(&leaf) || leaf == 0x4000_0004 {
            "same"
        } else {
            "info"
        };
        println!("EMUL {kind} cpuid {leaf:#x}.{sub}: {a:08x} {b:08x} {c:08x} {d:08x}");
    }
    let [max, b, c, d] = cpuid_leaf(0x4000_0000, 0);
    check([b, c, d] == [0x566E_6558, 0x6558_4D4D, 0x4D4D_566E] && max >= 0x4000_0002, || {
        "no Xen signature".into()
    })?;
    let [_, _, c1, d1] = cpuid_leaf(1, 0);
    let [_, b7, c7, _] = cpuid_leaf(7, 0);
    let hidden = [
        (d1, 3, "PSE"),
        (d1, 13, "PGE"),
        (c1, 3, "MONITOR"),
        (c1, 5, "VMX"),
        (c1, 17, "PCID"),
        (c1, 21, "X2APIC"),
        (c1, 24, "TSC_DEADLINE"),
        (b7, 7, "SMEP"),
        (b7, 10, "INVPCID"),
        (b7, 20, "SMAP"),
        (c7, 3, "PKU"),
        (c7, 16, "LA57"),
    ];
    for (reg, bit, name) in hidden {
        check(reg & (1 << bit) == 0, || format!("CPUID shows {name}"))?;
    }
    check(c1 & (1 << 31) != 0, || "no hypervisor bit".into())
}
