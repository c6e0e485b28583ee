//! `rdmsr`/`wrmsr` from a PV kernel, the pure half: which MSRs Xen 4.17 lets a PV guest read
//! and write and what it shows, given the host's values. Everything else is #GP, except that
//! a read before the guest has a #GP handler of an MSR the host has gives 0 (Xen's "faking
//! RDMSR", which keeps an early unguarded read from killing a kernel).
//!
//! Shown: FS_BASE, GS_BASE (the active one: the kernel's), SHADOW_GS_BASE (the user's), TSC,
//! EFER (the host's known bits, SVME hidden), PAT (the hypervisor's), APIC_BASE (enabled at
//! the default address, BSP on vCPU 0), MISC_ENABLE (the host's with performance monitoring
//! and MONITOR hidden, BTS/PEBS unavailable, xTPR disabled), PERF_CAPABILITIES (none),
//! PLATFORM_INFO and MISC_FEATURES_ENABLES (no CPUID faulting), FEATURE_CONTROL (locked) on
//! Intel, PERF_STATUS/PERF_CTL/THERM_STATUS (0) on Intel, HWCR (0) on AMD.
//! Written: the three bases (canonical values), EFER (only its current value), MISC_ENABLE
//! and PERF_CTL (accepted, ignored), MISC_FEATURES_ENABLES (0 only). Hardware-free,
//! host-tested.

pub const TSC: u32 = 0x10;
pub const APIC_BASE: u32 = 0x1B;
const FEATURE_CONTROL: u32 = 0x3A;
const PLATFORM_INFO: u32 = 0xCE;
const MISC_FEATURES_ENABLES: u32 = 0x140;
const PERF_STATUS: u32 = 0x198;
const PERF_CTL: u32 = 0x199;
const THERM_STATUS: u32 = 0x19C;
pub const MISC_ENABLE: u32 = 0x1A0;
pub const PAT: u32 = 0x277;
const PERF_CAPABILITIES: u32 = 0x345;
pub const EFER: u32 = 0xC000_0080;
pub const FS_BASE: u32 = 0xC000_0100;
pub const GS_BASE: u32 = 0xC000_0101;
pub const SHADOW_GS_BASE: u32 = 0xC000_0102;
const K8_HWCR: u32 = 0xC001_0015;

/// EFER bits Xen knows: SCE, LME, LMA, NXE, SVME, LMSLE, FFXSE, TCE, AIBRSE.
const EFER_KNOWN: u64 = 1
    | (1 << 8)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 13)
    | (1 << 14)
    | (1 << 15)
    | (1 << 21);
const EFER_SVME: u64 = 1 << 12;

/// The CPU vendor, for the MSRs only one vendor has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Other,
}

/// What a guest's MSR access sees of its vCPU and the host.
#[derive(Clone, Copy, Debug)]
pub struct MsrCtx {
    pub vcpu_id: u32,
    pub vendor: Vendor,
    /// The guest registered a #GP handler (the early-read leniency ends then).
    pub has_gp_handler: bool,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}

/// A base MSR write to carry out, as `set_segment_base` would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseWrite {
    Fs(u64),
    GsKernel(u64),
    GsUser(u64),
}

/// What a `wrmsr` does when it does not fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteEffect {
    Base(BaseWrite),
    Ignored,
}

/// The #GP a refused access raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gp;

fn guest_efer(host_efer: u64) -> u64 {
    host_efer & EFER_KNOWN & !EFER_SVME
}

fn guest_misc_enable(host: u64) -> u64 {
    const PERF_AVAIL: u64 = 1 << 7;
    const BTS_UNAVAIL: u64 = 1 << 11;
    const PEBS_UNAVAIL: u64 = 1 << 12;
    const MONITOR_ENABLE: u64 = 1 << 18;
    const XTPR_DISABLE: u64 = 1 << 23;
    (host & !(PERF_AVAIL | MONITOR_ENABLE)) | BTS_UNAVAIL | PEBS_UNAVAIL | XTPR_DISABLE
}

/// `rdmsr msr`; `host` reads a host MSR (`None` if it faults).
pub fn read(msr: u32, c: &MsrCtx, host: impl Fn(u32) -> Option<u64>) -> Result<u64, Gp> {
    let intel = c.vendor == Vendor::Intel;
    let v = match msr {
        FS_BASE => c.fs_base,
        GS_BASE => c.gs_base_kernel,
        SHADOW_GS_BASE => c.gs_base_user,
        TSC => host(TSC).ok_or(Gp)?,
        EFER => guest_efer(host(EFER).ok_or(Gp)?),
        PAT => host(PAT).ok_or(Gp)?,
        APIC_BASE => 0xFEE0_0000 | (1 << 11) | if c.vcpu_id == 0 { 1 << 8 } else { 0 },
        MISC_ENABLE => guest_misc_enable(host(MISC_ENABLE).ok_or(Gp)?),
        PERF_CAPABILITIES | PLATFORM_INFO | MISC_FEATURES_ENABLES => 0,
        FEATURE_CONTROL if intel => 1,
        PERF_STATUS | PERF_CTL | THERM_STATUS if intel => 0,
        K8_HWCR if c.vendor == Vendor::Amd => 0,
        _ => {
            let hv_range = msr >> 16 == 0x4000;
            if !c.has_gp_handler && !hv_range && host(msr).is_some() {
                return Ok(0);
            }
            return Err(Gp);
        }
    };
    Ok(v)
}

fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

/// `wrmsr msr, val`.
pub fn write(
    msr: u32,
    val: u64,
    c: &MsrCtx,
    host: impl Fn(u32) -> Option<u64>,
) -> Result<WriteEffect, Gp> {
    let base = |b: BaseWrite| if canonical(val) { Ok(WriteEffect::Base(b)) } else { Err(Gp) };
    match msr {
        FS_BASE => base(BaseWrite::Fs(val)),
        GS_BASE => base(BaseWrite::GsKernel(val)),
        SHADOW_GS_BASE => base(BaseWrite::GsUser(val)),
        EFER if val == guest_efer(host(EFER).ok_or(Gp)?) => Ok(WriteEffect::Ignored),
        MISC_ENABLE => host(MISC_ENABLE).map(|_| WriteEffect::Ignored).ok_or(Gp),
        PERF_CTL if c.vendor == Vendor::Intel => Ok(WriteEffect::Ignored),
        MISC_FEATURES_ENABLES if val == 0 => Ok(WriteEffect::Ignored),
        _ => Err(Gp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MsrCtx {
        MsrCtx {
            vcpu_id: 0,
            vendor: Vendor::Intel,
            has_gp_handler: true,
            fs_base: 0x1000,
            gs_base_kernel: 0xFFFF_FFFF_8000_0000,
            gs_base_user: 0x2000,
        }
    }

    fn host(msr: u32) -> Option<u64> {
        match msr {
            EFER => Some(0xD01 | EFER_SVME),
            PAT => Some(0x0007_0406_0007_0406),
            MISC_ENABLE => Some(1 | (1 << 7) | (1 << 18)),
            TSC => Some(12345),
            0xC000_0082 => Some(0xFFFF_8000_0000_1000),
            _ => None,
        }
    }

    #[test]
    fn reads() {
        let c = ctx();
        assert_eq!(read(FS_BASE, &c, host), Ok(0x1000));
        assert_eq!(read(GS_BASE, &c, host), Ok(0xFFFF_FFFF_8000_0000));
        assert_eq!(read(SHADOW_GS_BASE, &c, host), Ok(0x2000));
        assert_eq!(read(EFER, &c, host), Ok(0xD01));
        assert_eq!(read(PAT, &c, host), Ok(0x0007_0406_0007_0406));
        assert_eq!(read(APIC_BASE, &c, host), Ok(0xFEE0_0900));
        assert_eq!(read(APIC_BASE, &MsrCtx { vcpu_id: 1, ..c }, host), Ok(0xFEE0_0800));
        assert_eq!(read(MISC_ENABLE, &c, host), Ok(1 | (1 << 11) | (1 << 12) | (1 << 23)));
        assert_eq!(read(TSC, &c, host), Ok(12345));
        assert_eq!(read(FEATURE_CONTROL, &c, host), Ok(1));
        assert_eq!(read(FEATURE_CONTROL, &MsrCtx { vendor: Vendor::Amd, ..c }, host), Err(Gp));
        assert_eq!(read(K8_HWCR, &MsrCtx { vendor: Vendor::Amd, ..c }, host), Ok(0));
        assert_eq!(read(K8_HWCR, &c, host), Err(Gp));
        // LSTAR and the MCA banks: #GP.
        assert_eq!(read(0xC000_0082, &c, host), Err(Gp));
        assert_eq!(read(0x401, &c, host), Err(Gp));
    }

    #[test]
    fn early_reads_are_lenient_for_host_msrs() {
        let c = MsrCtx { has_gp_handler: false, ..ctx() };
        assert_eq!(read(0xC000_0082, &c, host), Ok(0));
        // Not for MSRs the host lacks, nor the hypervisor range.
        assert_eq!(read(0x401, &c, host), Err(Gp));
        assert_eq!(read(0x4000_0000, &c, |_| Some(1)), Err(Gp));
    }

    #[test]
    fn writes() {
        let c = ctx();
        assert_eq!(write(FS_BASE, 0x5000, &c, host), Ok(WriteEffect::Base(BaseWrite::Fs(0x5000))));
        assert_eq!(
            write(GS_BASE, 0xFFFF_8800_0000_0000, &c, host),
            Ok(WriteEffect::Base(BaseWrite::GsKernel(0xFFFF_8800_0000_0000)))
        );
        assert_eq!(write(SHADOW_GS_BASE, 7, &c, host), Ok(WriteEffect::Base(BaseWrite::GsUser(7))));
        assert_eq!(write(FS_BASE, 0x8000_0000_0000_0000, &c, host), Err(Gp));
        assert_eq!(write(EFER, 0xD01, &c, host), Ok(WriteEffect::Ignored));
        assert_eq!(write(EFER, 0x501, &c, host), Err(Gp));
        assert_eq!(write(MISC_ENABLE, 0, &c, host), Ok(WriteEffect::Ignored));
        assert_eq!(write(PERF_CTL, 0, &c, host), Ok(WriteEffect::Ignored));
        assert_eq!(write(MISC_FEATURES_ENABLES, 0, &c, host), Ok(WriteEffect::Ignored));
        assert_eq!(write(MISC_FEATURES_ENABLES, 1, &c, host), Err(Gp));
        assert_eq!(write(PAT, 0, &c, host), Err(Gp));
        assert_eq!(write(0xC000_0082, 0, &c, host), Err(Gp));
        assert_eq!(write(APIC_BASE, 0xFEE0_0900, &c, host), Err(Gp));
    }
}
