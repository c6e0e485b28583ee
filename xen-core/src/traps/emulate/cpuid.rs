//! CPUID as a PV guest sees it (the forced-emulation `ud2; .ascii "xen"; cpuid`): the host's
//! leaves filtered by the feature set Xen 4.17 offers PV guests (the features its public
//! `cpufeatureset.h` tags `A`), less what this hypervisor cannot honour, and Xen's hypervisor
//! leaves at 0x40000000-0x40000005 as 4.17 reports them to a PV domain.
//!
//! Hidden beyond Xen's PV set: XSAVE and everything that needs it (AVX and its families,
//! XSAVEOPT/XSAVEC/XGETBV1; guest FPU state is saved with FXSAVE), FSGSBASE (CR4.FSGSBASE
//! stays off: the hypervisor owns the bases), MCE/MCA (no virtual machine-check banks), and
//! invariant TSC. Already outside Xen's PV set: PSE, PGE, PSE36, MTRR, PCID, INVPCID, SMEP,
//! SMAP, PKU, LA57, X2APIC, MONITOR, TSC_DEADLINE, VMX, SVM, 1 GiB pages. Leaves past the
//! maxima, and 5, 6, 0xA and 0xD, read as zero. Hardware-free, host-tested.

/// Facts about this hypervisor and the domain the leaves report.
#[derive(Clone, Copy, Debug, Default)]
pub struct PvInfo {
    pub tsc_khz: u32,
    /// The TSC-to-nanoseconds scale of `vcpu_time_info` (multiplier, shift).
    pub tsc_mul: u32,
    pub tsc_shift: i8,
    /// Highest machine frame number.
    pub max_mfn: u64,
}

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

/// Leaf 1 EDX: FPU DE TSC MSR PAE CX8 APIC SEP CMOV PAT CLFLUSH ACPI MMX FXSR SSE SSE2 SS HTT.
const L1_EDX: u32 = bits(&[0, 2, 4, 5, 6, 8, 9, 11, 15, 16, 19, 22, 23, 24, 25, 26, 27, 28]);
/// Leaf 1 ECX: SSE3 PCLMULQDQ SSSE3 CX16 SSE4.1 SSE4.2 MOVBE POPCNT AESNI RDRAND.
const L1_ECX: u32 = bits(&[0, 1, 9, 13, 19, 20, 22, 23, 25, 30]);
const HYPERVISOR: u32 = 1 << 31;
/// Leaf 7.0 EBX: BMI1 BMI2 ERMS RTM RDSEED ADX CLFLUSHOPT CLWB SHA.
const L7_EBX: u32 = bits(&[3, 8, 9, 11, 18, 19, 23, 24, 29]);
/// Leaf 7.0 ECX: GFNI RDPID CLDEMOTE.
const L7_ECX: u32 = bits(&[8, 22, 25]);
/// Leaf 7.0 EDX: FSRM MD_CLEAR SERIALIZE IBRSB STIBP ARCH_CAPS SSBD.
const L7_EDX: u32 = bits(&[4, 10, 14, 26, 27, 29, 31]);
/// Leaf 7.1 EAX: FZRM FSRS FSRCS.
const L7_1_EAX: u32 = bits(&[10, 11, 12]);
/// Leaf 7.2 EDX: INTEL_PSFD MCDT_NO.
const L7_2_EDX: u32 = bits(&[0, 5]);
/// 0x80000001 EDX: SYSCALL NX MMXEXT FFXSR RDTSCP LM 3DNOWEXT 3DNOW.
const E1_EDX: u32 = bits(&[11, 20, 22, 25, 27, 29, 30, 31]);
/// Leaf 1 EDX features AMD also reports in 0x80000001 EDX (FPU to FXSR, less what differs).
const COMMON_1D: u32 = 0x0183_F3FF;
/// 0x80000001 ECX: LAHF_LM CMP_LEGACY ABM SSE4A MISALIGNSSE 3DNOWPREFETCH TBM DBEXT.
const E1_ECX: u32 = bits(&[0, 1, 5, 6, 7, 8, 21, 26]);
/// 0x80000008 EBX: CLZERO RSTR_FP_ERR_PTRS IBPB SSB_NO BTC_NO IBPB_RET.
const E8_EBX: u32 = bits(&[0, 2, 12, 26, 29, 30]);
/// 0x80000021 EAX: LFENCE_DISPATCH VERW_CLEAR NSCB SBPB IBPB_BRTYPE SRSO_NO SRSO_US_NO.
const E21_EAX: u32 = bits(&[2, 5, 6, 27, 28, 29, 30]);

const MAX_BASIC: u32 = 0xD;
const MAX_EXTD: u32 = 0x8000_0021;
/// Xen's hypervisor leaves: 0x40000000 through this one.
pub const HV_MAX: u32 = 0x4000_0005;

/// Xen's signature, "XenVMMXenVMM".
pub const SIGNATURE: [u32; 3] = [0x566E_6558, 0x6558_4D4D, 0x4D4D_566E];
/// `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD`.
const FEAT1_PRESERVE_AD: u32 = 1;

/// The leaf a PV guest sees; `host` is the CPU's own CPUID.
pub fn guest_cpuid(
    leaf: u32,
    subleaf: u32,
    info: &PvInfo,
    host: impl Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    match leaf {
        0x4000_0000..=0x4000_00FF => return hypervisor_leaf(leaf, subleaf, info, &host),
        0x8000_0000..=0xFFFF_FFFF => return extended_leaf(leaf, subleaf, &host),
        _ => {}
    }
    let max = host(0, 0)[0].min(MAX_BASIC);
    if leaf > max {
        return [0; 4];
    }
    let [a, b, c, d] = host(leaf, subleaf);
    match leaf {
        0 => [max, b, c, d],
        // The initial APIC id is not the guest's to know.
        1 => [a, b & 0x00FF_FFFF, (c & L1_ECX) | HYPERVISOR, d & L1_EDX],
        2 | 3 | 4 | 0xB | 0xC => [a, b, c, d],
        7 if subleaf > host(7, 0)[0].min(2) => [0; 4],
        7 => match subleaf {
            0 => [a.min(2), b & L7_EBX, c & L7_ECX, d & L7_EDX],
            1 => [a & L7_1_EAX, 0, 0, 0],
            _ => [0, 0, 0, d & L7_2_EDX],
        },
        _ => [0; 4],
    }
}

fn extended_leaf(leaf: u32, subleaf: u32, host: &impl Fn(u32, u32) -> [u32; 4]) -> [u32; 4] {
    let max = host(0x8000_0000, 0)[0].min(MAX_EXTD);
    if leaf > max {
        return [0; 4];
    }
    let [a, b, c, d] = host(leaf, subleaf);
    match leaf {
        0x8000_0000 => [max, b, c, d],
        // AMD repeats leaf 1's common EDX features here: the guest sees them as in leaf 1.
        0x8000_0001 if host(0, 0)[1] == 0x6874_7541 => {
            let l1 = host(1, 0)[3] & L1_EDX;
            [a, b, c & E1_ECX, (d & E1_EDX) | (l1 & COMMON_1D)]
        }
        0x8000_0001 => [a, b, c & E1_ECX, d & E1_EDX],
        // No LA57: linear addresses are 48 bits wide.
        0x8000_0008 => [(a & !0xFF00) | (((a >> 8) & 0xFF).min(48) << 8), b & E8_EBX, c, 0],
        0x8000_0002..=0x8000_0006 => [a, b, c, d],
        0x8000_0021 => [a & E21_EAX, 0, 0, 0],
        _ => [0; 4],
    }
}

fn hypervisor_leaf(
    leaf: u32,
    subleaf: u32,
    info: &PvInfo,
    host: &impl Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    let [s0, s1, s2] = SIGNATURE;
    match leaf {
        0x4000_0000 => [HV_MAX, s0, s1, s2],
        0x4000_0001 => [(4 << 16) | 17, 0, 0, 0],
        // One hypercall page; its MSR; the PV feature bit.
        0x4000_0002 => [1, 0x4000_0000, FEAT1_PRESERVE_AD, 0],
        // Time: no virtual TSC, the TSC is safe (one CPU), RDTSCP as the host has it.
        0x4000_0003 => match subleaf {
            0 => {
                let rdtscp = host(0x8000_0001, 0)[3] >> 27 & 1;
                [2 | (rdtscp << 2), 0, info.tsc_khz, 0]
            }
            1 => [0, 0, info.tsc_mul, info.tsc_shift as u8 as u32],
            2 => [info.tsc_khz, 0, 0, 0],
            _ => [0; 4],
        },
        // PV parameters: the machine address width.
        0x4000_0005 if subleaf == 0 => {
            let width = 64 - info.max_mfn.leading_zeros() + 12;
            [0, width, 0, 0]
        }
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that has everything.
    fn all(leaf: u32, _sub: u32) -> [u32; 4] {
        match leaf {
            0 => [0x20, 1, 2, 3],
            0x8000_0000 => [0x8000_0028, 0, 0, 0],
            _ => [u32::MAX; 4],
        }
    }

    fn info() -> PvInfo {
        PvInfo { tsc_khz: 2_000_000, tsc_mul: 0x8000_0000, tsc_shift: 1, max_mfn: 0x3FFFF }
    }

    fn leaf(l: u32, s: u32) -> [u32; 4] {
        guest_cpuid(l, s, &info(), all)
    }

    #[test]
    fn hypervisor_leaves_match_xen_4_17() {
        assert_eq!(leaf(0x4000_0000, 0), [0x4000_0005, 0x566E_6558, 0x6558_4D4D, 0x4D4D_566E]);
        assert_eq!(leaf(0x4000_0001, 0)[0], 0x0004_0011);
        assert_eq!(leaf(0x4000_0002, 0), [1, 0x4000_0000, 1, 0]);
        assert_eq!(leaf(0x4000_0003, 0), [6, 0, 2_000_000, 0]);
        assert_eq!(leaf(0x4000_0003, 1), [0, 0, 0x8000_0000, 1]);
        assert_eq!(leaf(0x4000_0003, 2)[0], 2_000_000);
        assert_eq!(leaf(0x4000_0004, 0), [0; 4]);
        assert_eq!(leaf(0x4000_0005, 0), [0, 30, 0, 0]);
        assert_eq!(leaf(0x4000_0006, 0), [0; 4]);
        assert_eq!(leaf(0x4000_0100, 0), [0; 4]);
    }

    #[test]
    fn what_a_pv_kernel_cannot_use_is_hidden() {
        let [_, b1, c1, d1] = leaf(1, 0);
        assert_eq!(b1 >> 24, 0);
        for (bit, name) in
            [(3, "PSE"), (7, "MCE"), (12, "MTRR"), (13, "PGE"), (14, "MCA"), (17, "PSE36")]
        {
            assert_eq!(d1 & (1 << bit), 0, "{name}");
        }
        for (bit, name) in [
            (3, "MONITOR"),
            (5, "VMX"),
            (12, "FMA"),
            (17, "PCID"),
            (21, "X2APIC"),
            (24, "TSC_DEADLINE"),
            (26, "XSAVE"),
            (27, "OSXSAVE"),
            (28, "AVX"),
        ] {
            assert_eq!(c1 & (1 << bit), 0, "{name}");
        }
        assert_ne!(c1 & HYPERVISOR, 0);
        let [a7, b7, c7, d7] = leaf(7, 0);
        assert_eq!(a7, 2);
        for (bit, name) in [
            (0, "FSGSBASE"),
            (5, "AVX2"),
            (7, "SMEP"),
            (10, "INVPCID"),
            (16, "AVX512F"),
            (20, "SMAP"),
        ] {
            assert_eq!(b7 & (1 << bit), 0, "{name}");
        }
        for (bit, name) in [(3, "PKU"), (4, "OSPKE"), (16, "LA57")] {
            assert_eq!(c7 & (1 << bit), 0, "{name}");
        }
        assert_eq!(d7 & (1 << 2), 0, "AVX512_4VNNIW");
        assert_eq!(leaf(0xD, 0), [0; 4]);
        assert_eq!(leaf(0xD, 1), [0; 4]);
        assert_eq!(leaf(5, 0), [0; 4]);
        let [_, _, ce1, de1] = leaf(0x8000_0001, 0);
        assert_eq!(de1 & (1 << 26), 0, "1 GiB pages");
        assert_eq!(ce1 & (1 << 2), 0, "SVM");
        assert_eq!(ce1 & (1 << 11), 0, "XOP");
        assert_eq!(leaf(0x8000_0007, 0), [0; 4], "invariant TSC");
        // What it can use stays.
        assert_ne!(d1 & (1 << 25), 0, "SSE");
        assert_ne!(de1 & (1 << 20), 0, "NX");
        assert_ne!(de1 & (1 << 29), 0, "LM");
    }

    #[test]
    fn amd_common_bits_follow_leaf_1() {
        let amd = |l: u32, s: u32| match l {
            0 => [0xD, 0x6874_7541, 0x444D_4163, 0x6974_6E65],
            0x8000_0008 => [0x3928, 0, 0, 0],
            _ => all(l, s),
        };
        let d1 = guest_cpuid(1, 0, &info(), amd)[3];
        let e1 = guest_cpuid(0x8000_0001, 0, &info(), amd)[3];
        assert_eq!(e1 & COMMON_1D, d1 & COMMON_1D);
        assert_eq!(e1 & (1 << 7), 0, "MCE");
        assert_eq!(guest_cpuid(0x8000_0008, 0, &info(), amd)[0], 0x3028);
    }

    #[test]
    fn maxima_clamp_and_beyond_reads_zero() {
        assert_eq!(leaf(0, 0)[0], 0xD);
        assert_eq!(leaf(0xE, 0), [0; 4]);
        assert_eq!(leaf(0x8000_0000, 0)[0], 0x8000_0021);
        assert_eq!(leaf(0x8000_0022, 0), [0; 4]);
        // A host with fewer leaves: the guest's maximum follows it.
        let small = |l: u32, _s: u32| if l == 0 { [4, 0, 0, 0] } else { [u32::MAX; 4] };
        assert_eq!(guest_cpuid(0, 0, &info(), small)[0], 4);
        assert_eq!(guest_cpuid(7, 0, &info(), small), [0; 4]);
    }
}
