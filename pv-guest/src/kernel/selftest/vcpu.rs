//! What a vCPU is told about itself, as an unmodified Linux relies on it: its runstate kept in
//! an area it registered (Linux cannot boot without one), a second copy of its time for user
//! space, and the periodic timer every PV vCPU has. The same checks pass on Xen 4.17.

use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::guest;
use hypercall_abi::vcpu::{
    RUNSTATE_RUNNING, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
    VcpuRegisterRunstateMemoryArea, VcpuRunstateInfo,
};
use pv_guest::{events, time};

use super::run::Test::{self, Check};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[
    ("runstate", Check(runstate)),
    ("timearea", Check(timearea)),
    ("periodic", Check(periodic)),
    ("features", Check(features)),
    ("settime", Check(settime)),
    ("iretregs", Check(iretregs)),
    ("vcpuinfo", Check(vcpuinfo)),
];

/// `VCPUOP_register_vcpu_info` (what Linux does on every boot): the vcpu_info moves into a
/// page of the kernel's, and moves again. Each registered page holds a reference the
/// hypervisor must give back when the domain dies (the system test checks every frame comes
/// back). Run last: this kernel's event code keeps using the shared_info copy.
pub fn vcpuinfo() -> Result<(), String> {
    use hypercall_abi::vcpu::{VCPUOP_REGISTER_VCPU_INFO, VcpuRegisterVcpuInfo};
    let (Some(a), Some(b)) =
        (pv_guest::memory::pages::alloc_page(), pv_guest::memory::pages::alloc_page())
    else {
        return Err("no pages".into());
    };
    for (page, offset) in [(a, 64u32), (b, 0)] {
        let mut r = VcpuRegisterVcpuInfo { mfn: page.mfn().0, offset, rsvd: 0 };
        #[allow(unsafe_code)]
        // SAFETY: the page is this kernel's own and otherwise unused; the hypervisor writes
        // the 64-byte vcpu_info at `offset` in it from now on.
        unsafe { guest::vcpu_op(VCPUOP_REGISTER_VCPU_INFO, 0, &mut r) }
            .map_err(|e| alloc::format!("register at {:#x}+{offset}: {e:?}", page.mfn().0))?;
        // The vcpu_info came along: events are masked (byte 1), as this kernel keeps them.
        if page.shared().u8_at(offset as usize + 1).load(Ordering::SeqCst) != 1 {
            return Err("the vcpu_info did not move into the page".into());
        }
    }
    // A page the domain does not own is refused.
    let mut r = VcpuRegisterVcpuInfo { mfn: 0x200, offset: 0, rsvd: 0 };
    #[allow(unsafe_code)]
    // SAFETY: a hypervisor frame: refused, nothing is written.
    if unsafe { guest::vcpu_op(VCPUOP_REGISTER_VCPU_INFO, 0, &mut r) }.is_ok() {
        return Err("a hypervisor frame was accepted for vcpu_info".into());
    }
    Ok(())
}

/// One `iret` hypercall back to kernel mode, at the instruction after it, with `flags` in the
/// frame and 0x1111 / 0x2222 as the frame's rcx / r11: returns (rcx, r11, the return address).
fn iret_to_kernel(flags: u64) -> (u64, u64, u64) {
    use hypercall_abi::arch::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
    let (rcx, r11, label): (u64, u64, u64);
    // SAFETY: the frame returns to the label below on this same stack (rsp as it was before
    // the pushes) with events enabled (pushfq's IF is always set in a PV kernel); rax, rcx and
    // r11 are declared clobbered, every other register is kept by the hypervisor.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "lea {label}, [rip + 2f]",
            "mov {tmp}, rsp",
            "push {ss}",
            "push {tmp}",
            "pushfq",
            "push {cs}",
            "push {label}",
            "push {flags}",
            // The stub pushes rcx, r11 and rax: the rest of the frame.
            "jmp hypercall_page + 23 * 32",
            "2:",
            label = out(reg) label,
            tmp = out(reg) _,
            ss = in(reg) u64::from(FLAT_KERNEL_SS64),
            // RPL 0 in a frame's cs is how a PV kernel names its own mode (RPL 3: user).
            cs = in(reg) u64::from(FLAT_KERNEL_CS64 & !3),
            flags = in(reg) flags,
            out("rax") _,
            inout("rcx") 0x1111u64 => rcx,
            inout("r11") 0x2222u64 => r11,
        );
    }
    (rcx, r11, label)
}

/// What `iret` leaves in rcx and r11, as Xen 4.17: from the frame, or with `VGCF_in_syscall`
/// what `sysret` leaves (rcx = the return address, r11 = the flags), never the hypercall's own
/// return address. Printed for comparison with Xen.
fn iretregs() -> Result<(), String> {
    use hypercall_abi::arch::VGCF_IN_SYSCALL;
    let (rcx, r11, _) = iret_to_kernel(0);
    let plain = (rcx, r11) == (0x1111, 0x2222);
    pv_guest::println!("INFO iret: rcx and r11 from the frame: {plain}");
    let (rcx, r11, label) = iret_to_kernel(VGCF_IN_SYSCALL);
    let sysret = rcx == label && r11 & 0x202 == 0x202 && r11 >> 22 == 0;
    pv_guest::println!("INFO iret VGCF_in_syscall: rcx = return address, r11 = flags: {sysret}");
    if !plain || !sysret {
        return Err(alloc::format!(
            "in_syscall: rcx {rcx:#x} r11 {r11:#x}, return address {label:#x}"
        ));
    }
    Ok(())
}

/// The wall clock at system time 0 from shared_info, under `wc_version`.
fn wallclock() -> (u64, u32) {
    use core::mem::offset_of;
    use hypercall_abi::shared_info::SharedInfo;
    let si = events::shared_info();
    loop {
        let v = si.u32_at(offset_of!(SharedInfo, wc_version)).load(Ordering::Acquire);
        let lo = si.u32_at(offset_of!(SharedInfo, wc_sec)).load(Ordering::Relaxed);
        let hi = si.u32_at(offset_of!(SharedInfo, wc_sec_hi)).load(Ordering::Relaxed);
        let ns = si.u32_at(offset_of!(SharedInfo, wc_nsec)).load(Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::Acquire);
        if v & 1 == 0 && si.u32_at(offset_of!(SharedInfo, wc_version)).load(Ordering::Relaxed) == v
        {
            return (u64::from(lo) | (u64::from(hi) << 32), ns);
        }
    }
}

/// `platform_op` as a Linux dom0 uses it: `XENPF_settime64` moves shared_info's wallclock so
/// that wallclock + system time reads what was set (then the clock is put back), and the
/// envelope's checks give Xen's errnos (printed for comparison). A domU is refused (`EPERM`).
fn settime() -> Result<(), String> {
    use hypercall_abi::platform::{PlatformOp, Settime64, XENPF_SETTIME64};
    use zerocopy::IntoBytes;
    let raw = |op: &mut PlatformOp| {
        let bytes: &mut [u8; 136] = op.as_mut_bytes().try_into().expect("136 bytes");
        // SAFETY: settime envelopes (or ones the hypervisor must refuse); setting the clock
        // touches no memory of this kernel.
        #[allow(unsafe_code)]
        unsafe {
            guest::platform_op(bytes)
        }
    };
    if !pv_guest::start_info().is_privileged() {
        return match guest::platform_settime(1_700_000_000, 0, time::now_ns()) {
            Err(hypercall_abi::Errno::EPERM) => Ok(()),
            r => Err(alloc::format!("a domU setting the clock: {r:?}, want EPERM")),
        };
    }
    let (sec0, nsec0) = wallclock();
    let now = time::now_ns();
    let target = 1_700_000_000u64;
    guest::platform_settime(target, 250_000_000, now)
        .map_err(|e| alloc::format!("settime: {e:?}"))?;
    let (sec, nsec) = wallclock();
    // Wall time at `now`, by the new wallclock: within a millisecond of target.25.
    let wall_ns = u128::from(sec) * 1_000_000_000 + u128::from(nsec) + u128::from(now);
    let want = u128::from(target) * 1_000_000_000 + 250_000_000;
    // Back to the wall time the old wallclock gives now.
    let t = time::now_ns();
    let wall = sec0 * 1_000_000_000 + u64::from(nsec0) + t;
    let back = guest::platform_settime(wall / 1_000_000_000, (wall % 1_000_000_000) as u32, t);
    if wall_ns.abs_diff(want) > 1_000_000 {
        return Err(alloc::format!("wallclock {sec}.{nsec:09} + {now} ns is not {target}.25"));
    }
    back.map_err(|e| alloc::format!("setting the clock back: {e:?}"))?;
    let mut bad = PlatformOp::new(XENPF_SETTIME64, &Settime64 { mbz: 1, ..Default::default() });
    pv_guest::println!("INFO platform_op settime64 mbz=1: {:?}", raw(&mut bad));
    let mut bad = PlatformOp::new(XENPF_SETTIME64, &Settime64::default());
    bad.interface_version = 0x0300_0000;
    pv_guest::println!("INFO platform_op old interface version: {:?}", raw(&mut bad));
    let mut bad = PlatformOp::new(0x7777, &Settime64::default());
    pv_guest::println!("INFO platform_op unknown command: {:?}", raw(&mut bad));
    Ok(())
}

/// The XENFEAT bits a PV kernel is told about (`xen_version(XENVER_get_features)`): printed
/// for comparison with Xen, and checked for the two Linux cannot boot without.
fn features() -> Result<(), String> {
    use hypercall_abi::version::{
        XENFEAT_GNTTAB_MAP_AVAIL_BITS, XENFEAT_MMU_PT_UPDATE_PRESERVE_AD,
    };
    let m = guest::get_features(0).map_err(|e| alloc::format!("get_features: {e:?}"))?;
    pv_guest::println!("INFO features: submap 0 = {m:#x}");
    let need = (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD) | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS);
    if m & need != need {
        return Err(alloc::format!("submap {m:#x} lacks {:#x}", need & !m));
    }
    Ok(())
}

/// Memory the hypervisor writes into (the areas), read with atomics.
#[repr(C, align(64))]
struct Area([AtomicU64; 6]);

static RUNSTATE: Area = Area([const { AtomicU64::new(0) }; 6]);
static TIME: Area = Area([const { AtomicU64::new(0) }; 6]);

fn register(cmd: u32, area: &'static Area) -> Result<(), String> {
    let mut r = VcpuRegisterRunstateMemoryArea { addr: area.0.as_ptr() as u64 };
    #[allow(unsafe_code)]
    // SAFETY: the area is a static that lives as long as the kernel and is only read with
    // atomics, so the hypervisor writing it at any time is sound.
    let rc = unsafe { guest::vcpu_op(cmd, 0, &mut r) };
    rc.map(|_| ()).map_err(|e| alloc::format!("register: {e:?}"))
}

/// The runstate area is filled at once and kept up to date: it says running when the vCPU
/// reads it, its times add up to the time since the state was entered, and they grow.
fn runstate() -> Result<(), String> {
    register(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, &RUNSTATE)?;
    let read = || {
        let w: [u64; 6] = core::array::from_fn(|i| RUNSTATE.0[i].load(Ordering::SeqCst));
        VcpuRunstateInfo {
            state: w[0] as i32,
            _pad: 0,
            state_entry_time: w[1] & !(1 << 63),
            time: [w[2], w[3], w[4], w[5]],
        }
    };
    let first = read();
    if first.state != RUNSTATE_RUNNING || first.state_entry_time == 0 {
        return Err(alloc::format!("right after registering: {first:?}"));
    }
    // Sleep: the area is rewritten when this vCPU runs again, with time spent blocked.
    time::sleep_ns(20_000_000);
    let later = read();
    if later.state != RUNSTATE_RUNNING || later.state_entry_time <= first.state_entry_time {
        return Err(alloc::format!("after a sleep: {later:?} (was {first:?})"));
    }
    if later.time.iter().sum::<u64>() <= first.time.iter().sum::<u64>() {
        return Err(alloc::format!("times did not grow: {later:?} (was {first:?})"));
    }
    let asked =
        guest::vcpu_runstate_info(0).map_err(|e| alloc::format!("get_runstate_info: {e:?}"))?;
    if asked.state != RUNSTATE_RUNNING {
        return Err(alloc::format!("VCPUOP_get_runstate_info: {asked:?}"));
    }
    Ok(())
}

/// The time area holds a valid `vcpu_time_info`: an even version, a TSC scale, and a time
/// base no later than now (Xen rewrites it when it recalibrates or switches the vCPU in, not
/// on every read, so it may stay the same for a while).
fn timearea() -> Result<(), String> {
    register(VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, &TIME)?;
    let now = time::now_ns();
    let version = TIME.0[0].load(Ordering::SeqCst) as u32;
    let system_time = TIME.0[2].load(Ordering::SeqCst);
    let mul = TIME.0[3].load(Ordering::SeqCst) as u32;
    if version == 0 || version % 2 == 1 || mul == 0 || system_time == 0 || system_time > now {
        return Err(alloc::format!(
            "version {version}, mul {mul}, system time {system_time}, now {now}"
        ));
    }
    Ok(())
}

/// A periodic timer raises VIRQ_TIMER at its period while the vCPU runs, until stopped. (On
/// Xen it does not tick while the vCPU is blocked: a sleeping kernel is woken by its
/// single-shot timer. So the ticks are counted while running, with events polled.)
fn periodic() -> Result<(), String> {
    let busy = |ns: u64| {
        let t0 = time::now_ns();
        while time::now_ns() - t0 < ns {
            events::dispatch();
        }
    };
    let before = events::timer_events();
    guest::vcpu_set_periodic_timer(0, 10_000_000).map_err(|e| alloc::format!("set: {e:?}"))?;
    busy(200_000_000);
    guest::vcpu_stop_periodic_timer(0).map_err(|e| alloc::format!("stop: {e:?}"))?;
    let ticks = events::timer_events() - before;
    // 20 periods in 200 ms: a loaded host delivers some late (missed periods are skipped).
    if !(5..=25).contains(&ticks) {
        return Err(alloc::format!("{ticks} ticks of a 10 ms timer in 200 ms"));
    }
    busy(1_000_000);
    let stopped = events::timer_events();
    busy(50_000_000);
    if events::timer_events() != stopped {
        return Err("ticks after the timer was stopped".into());
    }
    Ok(())
}
