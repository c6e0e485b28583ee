//! Carrying emulation out on the running vCPU: fetching the guest's instruction bytes, the
//! forced-emulation CPUID, and the privileged operations `privop` decodes, with their effects
//! on the vCPU's context, its privileged registers and the hardware.

use core::sync::atomic::Ordering;

use hypercall_abi::Errno;
use hypercall_abi::shared_info::tsc_scale_for_hz;
use hypercall_abi::vm_assist::VMASST_TYPE_ARCHITECTURAL_IOPL;

use super::cpuid::{PvInfo, guest_cpuid};
use super::decode::{Gprs, MAX_LEN, decode};
use super::msr::{self, MsrCtx, Vendor, WriteEffect};
use super::privop::{self, PrivOp};
use crate::arch::entry::GuestRegs;
use crate::arch::{cpu, fpu, io, privregs, time, uaccess};
use crate::domain::{Domain, VI_CR2, Vcpu, VcpuContext};
use crate::mm::machine::with_mm;
use crate::traps::callbacks::apply_segment_base;

/// What became of a faulting instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Carried out; the guest goes on after it.
    Done,
    /// Recognised but refused: the guest gets this exception (#GP(0) or #UD) instead.
    Raise(u64),
    /// Not emulated: the guest gets the fault the CPU raised.
    No,
}

/// Copies the bytes at `rip` once: up to [`MAX_LEN`], fewer when the next page is not
/// readable (an instruction at the end of a page needs no more).
pub fn fetch(rip: u64) -> ([u8; MAX_LEN], usize) {
    let mut buf = [0u8; MAX_LEN];
    let first = (MAX_LEN as u64).min(4096 - (rip & 0xFFF)) as usize;
    if uaccess::copy_from_guest(&mut buf[..first], rip).is_err() {
        return (buf, 0);
    }
    if first < MAX_LEN && uaccess::copy_from_guest(&mut buf[first..], rip + first as u64).is_ok() {
        return (buf, MAX_LEN);
    }
    (buf, first)
}

/// The registers in encoding order.
pub fn read_gprs(r: &GuestRegs) -> Gprs {
    [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ]
}

/// Stores registers in encoding order back.
pub fn write_gprs(r: &mut GuestRegs, g: &Gprs) {
    [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ] = *g;
}

/// `ud2; .ascii "xen"; cpuid`
const FORCED_CPUID: [u8; 7] = [0x0F, 0x0B, b'x', b'e', b'n', 0x0F, 0xA2];

/// Emulates a forced-emulation CPUID at the guest's rip; false if the bytes are not that.
pub fn forced_cpuid(regs: &mut GuestRegs) -> bool {
    let mut insn = [0u8; 7];
    if uaccess::copy_from_guest(&mut insn, regs.rip).is_err() || insn != FORCED_CPUID {
        return false;
    }
    let (tsc_mul, tsc_shift) = tsc_scale_for_hz(time::tsc_hz()).unwrap_or((0, 0));
    let info = PvInfo {
        tsc_khz: (time::tsc_hz() / 1000) as u32,
        tsc_mul,
        tsc_shift,
        max_mfn: with_mm(|mm| mm.nr_frames()).saturating_sub(1),
    };
    let [a, b, c, d] = guest_cpuid(regs.rax as u32, regs.rcx as u32, &info, cpu::cpuid);
    regs.rax = a.into();
    regs.rbx = b.into();
    regs.rcx = c.into();
    regs.rdx = d.into();
    regs.rip = regs.rip.wrapping_add(7);
    true
}

/// Ports the hypervisor drives itself, which no guest may touch: the PICs, the PIT and its
/// gate, the RTC, COM1 (the hypervisor's console), QEMU's debug-exit and ACPI PM ports.
const RESERVED_PORTS: &[(u16, u16)] = &[
    (0x20, 0x21),
    (0xA0, 0xA1),
    (0x40, 0x43),
    (0x61, 0x61),
    (0x70, 0x71),
    (0x3F8, 0x3FF),
    (0xF4, 0xF7),
    (0x600, 0x63F),
];

/// Whether the domain reaches the real port (dom0, away from the hypervisor's ports).
fn port_owned(d: &Domain, port: u16, size: u8) -> bool {
    let last = port.saturating_add(u16::from(size) - 1);
    d.is_privileged && !RESERVED_PORTS.iter().any(|&(lo, hi)| port <= hi && last >= lo)
}

fn vendor() -> Vendor {
    match cpu::cpuid(0, 0) {
        [_, 0x756E_6547, 0x6C65_746E, 0x4965_6E69] => Vendor::Intel,
        [_, 0x6874_7541, 0x444D_4163, 0x6974_6E65] => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// Emulates the privileged instruction at the guest's rip after a #GP(0).
pub fn privileged_op(
    d: &Domain,
    v: &Vcpu,
    ctx: &mut VcpuContext,
    regs: &mut GuestRegs,
) -> Emulated {
    let (bytes, n) = fetch(regs.rip);
    let Some(insn) = decode(&bytes[..n]) else { return Emulated::No };
    let Some(op) = privop::privop(&insn) else { return Emulated::No };
    let mut g = read_gprs(regs);
    let arch_iopl =
        d.vm_assist.load(Ordering::Relaxed) & (1 << VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    let io_ok = privop::iopl_ok(ctx.kernel_mode, arch_iopl, ctx.iopl);
    let result = match op {
        PrivOp::Cli | PrivOp::Sti if io_ok => Emulated::Done,
        PrivOp::In { size, port } if io_ok => {
            let port = port.map_or(g[2] as u16, u16::from);
            let val = if port_owned(d, port, size) {
                io::port_in(port, size)
            } else {
                privop::unowned_port_read(&ctx.privregs, port, size)
            };
            // 32-bit results zero the upper half of rax, as the CPU does; narrower ones merge.
            super::decode::write_reg(&mut g, 0, size, 0, u64::from(val));
            Emulated::Done
        }
        PrivOp::Out { size, port } if io_ok => {
            let port = port.map_or(g[2] as u16, u16::from);
            let val = g[0] as u32;
            if port_owned(d, port, size) {
                io::port_out(port, size, val);
            } else {
                privop::unowned_port_write(&mut ctx.privregs, port, size, val);
            }
            Emulated::Done
        }
        // The rest needs the guest's kernel (its ring 0), as on Xen.
        _ if !ctx.kernel_mode => Emulated::No,
        PrivOp::Rdmsr => {
            let c = msr_ctx(v, ctx);
            match msr::read(g[1] as u32, &c, privregs::rdmsr_safe) {
                Ok(val) => {
                    g[0] = val & 0xFFFF_FFFF;
                    g[2] = val >> 32;
                    Emulated::Done
                }
                Err(_) => Emulated::Raise(13),
            }
        }
        PrivOp::Wrmsr => {
            let val = (g[2] << 32) | (g[0] & 0xFFFF_FFFF);
            let c = msr_ctx(v, ctx);
            match msr::write(g[1] as u32, val, &c, privregs::rdmsr_safe) {
                Ok(WriteEffect::Base(b)) => {
                    apply_segment_base(ctx, b);
                    Emulated::Done
                }
                Ok(WriteEffect::Ignored) => Emulated::Done,
                Err(_) => Emulated::Raise(13),
            }
        }
        PrivOp::ReadCr { cr, gpr } => {
            let val = match cr {
                0 => Some(privop::cr0_read(privregs::read_cr0(), ctx.guest_ts)),
                2 => Some(ctx.privregs.cr2),
                // The machine address of its L4, as Xen returns it to a 64-bit PV guest.
                3 => Some(ctx.guest_table.0 << 12),
                4 => Some(privop::cr4_read(privregs::read_cr4(), &ctx.privregs)),
                _ => None,
            };
            match val {
                Some(val) => {
                    g[usize::from(gpr)] = val;
                    Emulated::Done
                }
                None => Emulated::No,
            }
        }
        PrivOp::WriteCr { cr, gpr } => write_cr(v, ctx, d, cr, g[usize::from(gpr)]),
        PrivOp::ReadDr { dr, gpr } => match privop::get_debugreg(&ctx.privregs, dr.into()) {
            Ok(val) => {
                g[usize::from(gpr)] = val;
                Emulated::Done
            }
            Err(_) => Emulated::Raise(6),
        },
        PrivOp::WriteDr { dr, gpr } => match set_debugreg(ctx, dr.into(), g[usize::from(gpr)]) {
            Ok(()) => Emulated::Done,
            Err(Errno::ENODEV) => Emulated::Raise(6),
            Err(_) => Emulated::Raise(13),
        },
        PrivOp::Clts => {
            ctx.guest_ts = false;
            fpu::clear_ts();
            Emulated::Done
        }
        // Only a domain with hardware access flushes caches; for others it is a no-op (Linux
        // runs it in start-of-day timing loops).
        PrivOp::Wbinvd => {
            if d.is_privileged {
                privregs::wbinvd();
            }
            Emulated::Done
        }
        PrivOp::Cli | PrivOp::Sti | PrivOp::In { .. } | PrivOp::Out { .. } => Emulated::No,
    };
    if result == Emulated::Done {
        write_gprs(regs, &g);
        regs.rip = regs.rip.wrapping_add(u64::from(insn.len));
    }
    result
}

fn msr_ctx(v: &Vcpu, ctx: &VcpuContext) -> MsrCtx {
    MsrCtx {
        vcpu_id: v.id,
        vendor: vendor(),
        has_gp_handler: ctx.trap_table[13].address != 0,
        // Live values: a guest's selector load may have changed FS's since it was saved, and
        // the active (kernel) GS base is parked in KERNEL_GS_BASE while the hypervisor runs.
        fs_base: cpu::rdmsr(cpu::MSR_FS_BASE),
        gs_base_kernel: cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE),
        gs_base_user: ctx.gs_base_user,
    }
}

fn write_cr(v: &Vcpu, ctx: &mut VcpuContext, d: &Domain, cr: u8, val: u64) -> Emulated {
    match cr {
        0 => match privop::cr0_write(privregs::read_cr0() & !privop::CR0_TS, val) {
            Some(ts) => {
                ctx.guest_ts = ts;
                if ts {
                    fpu::set_ts()
                } else {
                    fpu::clear_ts()
                }
                Emulated::Done
            }
            None => Emulated::Raise(13),
        },
        2 => {
            ctx.privregs.cr2 = val;
            v.info_word(VI_CR2).store(val, Ordering::Relaxed);
            Emulated::Done
        }
        3 => match crate::mm::mmu::new_baseptr(ctx, d.id, hypercall_abi::Mfn(val >> 12)) {
            Ok(()) => Emulated::Done,
            Err(_) => Emulated::Raise(13),
        },
        4 => {
            privop::cr4_write(&mut ctx.privregs, val);
            Emulated::Done
        }
        _ => Emulated::No,
    }
}

/// `set_debugreg` for the current vCPU: validated, then loaded into the CPU.
pub fn set_debugreg(ctx: &mut VcpuContext, reg: u32, value: u64) -> Result<(), Errno> {
    privop::set_debugreg(&mut ctx.privregs, reg, value)?;
    load_debug_registers(ctx);
    Ok(())
}

/// Loads a vCPU's debug registers into the CPU (on every switch to it, and after a change).
pub fn load_debug_registers(ctx: &VcpuContext) {
    let p = &ctx.privregs;
    privregs::load_debug(&p.dr, p.dr7, p.dr7_active());
}
