//! `shared_info` and `vcpu_info`: the page the hypervisor and a guest both write, holding the
//! event-channel bitmaps, per-vCPU upcall flags, time and wallclock.
//!
//! Both sides access it concurrently, so the structs here describe *layout*; code touching a
//! live page must use atomic or volatile accesses at these offsets (`offset_of!`), never a plain
//! Rust reference held across a point where the other side may write. Who writes what:
//! - `evtchn_pending`: hypervisor sets bits, guest clears them (atomically, both sides).
//! - `evtchn_mask`: guest only; the hypervisor reads it.
//! - `vcpu_info.evtchn_upcall_pending` / `evtchn_pending_sel`: hypervisor sets, guest clears.
//! - `vcpu_info.evtchn_upcall_mask`: guest's "interrupts disabled" flag; the hypervisor sets it
//!   when it delivers an event and on `iret` from the saved value.
//! - `time`, `wc_*`: hypervisor only, under a version counter (odd = update in progress).
//!
//! [`atomic`] (re-exported here) is the live page: the same layout in atomics, with the guest's
//! protocols on it as methods.

pub mod atomic;

pub use atomic::{AtomicSharedInfo, AtomicVcpuInfo, AtomicVcpuTimeInfo};

use crate::types::EvtchnPort;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// vCPUs with a `vcpu_info` slot in `shared_info` (`XEN_LEGACY_MAX_VCPUS`). More vCPUs need
/// `VCPUOP_register_vcpu_info`.
pub const MAX_VIRT_CPUS: usize = 32;
/// Ports in the 2-level event-channel ABI: 64 selector bits x 64 bits per word.
pub const NR_EVENT_CHANNELS: u32 = 4096;
/// `u64` words in each of `evtchn_pending` / `evtchn_mask`.
pub const EVTCHN_WORDS: usize = 64;

/// `vcpu_time_info.flags`: the TSC is stable across all vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `vcpu_time_info.flags`: the guest was stopped (debugger / migration).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// Per-vCPU time parameters (32 bytes). Written by the hypervisor only, under `version`.
///
/// Reader protocol (a seqlock): read `version`; if odd, retry; read the fields; read `version`
/// again; if it changed, retry.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuTimeInfo {
    /// Incremented before and after each update; odd while an update is in progress.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC value at the moment `system_time` was sampled.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction applied after the shift.
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-scale of the TSC delta; negative means shift right.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

impl VcpuTimeInfo {
    /// Scale a TSC delta to nanoseconds with this vCPU's `mul` and `shift`.
    #[must_use]
    pub const fn scale_delta(&self, delta: u64) -> u64 {
        scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift)
    }

    /// System time (ns since boot) at TSC value `tsc`:
    /// `system_time + ((((tsc - tsc_timestamp) << shift) * mul) >> 32)`.
    #[must_use]
    pub const fn ns_at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(self.scale_delta(tsc.wrapping_sub(self.tsc_timestamp)))
    }
}

/// The scaling formula on its own: `((delta << shift) * mul) >> 32`, with a negative shift
/// shifting right. The product is computed in 128 bits so nothing overflows.
#[must_use]
pub const fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta.wrapping_shl(shift as u32)
    } else {
        delta.wrapping_shr(shift.unsigned_abs() as u32)
    };
    ((d as u128 * mul as u128) >> 32) as u64
}

/// Choose `(tsc_to_system_mul, tsc_shift)` for a TSC running at `tsc_hz` (the hypervisor's side
/// of the formula). The shift brings the frequency into `(1 GHz, 2 GHz]` so the multiplier
/// `2^32 * 1e9 / scaled_hz` fits in 32 bits with the most precision. Returns `None` for 0 Hz.
#[must_use]
pub const fn tsc_scale_for_hz(tsc_hz: u64) -> Option<(u32, i8)> {
    if tsc_hz == 0 {
        return None;
    }
    const NS_PER_SEC: u128 = 1_000_000_000;
    let mut hz = tsc_hz as u128;
    let mut shift: i8 = 0;
    while hz > 2 * NS_PER_SEC {
        hz >>= 1;
        shift -= 1;
    }
    while hz <= NS_PER_SEC {
        hz <<= 1;
        shift += 1;
    }
    Some((((NS_PER_SEC << 32) / hz) as u32, shift))
}

/// x86 part of `vcpu_info`.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ArchVcpuInfo {
    /// OUT (hypervisor): faulting address of the last page fault bounced to the guest (the
    /// guest cannot read the real CR2).
    pub cr2: u64,
    /// Padding so that `vcpu_info` is 64 bytes.
    pub pad: u64,
}

/// Per-vCPU shared state (64 bytes).
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuInfo {
    /// Set non-zero by the hypervisor when an event is pending for this vCPU; the guest clears
    /// it *before* scanning, so a new event between scan and clear is not lost.
    pub evtchn_upcall_pending: u8,
    /// Guest-owned "events disabled" flag (the PV `cli`). Non-zero means no upcall; the
    /// hypervisor sets it when it delivers one. Starts at 1 at boot.
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub _pad0: [u8; 6],
    /// Selector: bit `i` set means word `i` of `evtchn_pending` may have unmasked pending
    /// bits. Hypervisor sets (atomically), guest clears (atomic exchange).
    pub evtchn_pending_sel: u64,
    /// Architecture part (CR2).
    pub arch: ArchVcpuInfo,
    /// Time parameters for this vCPU.
    pub time: VcpuTimeInfo,
}

/// x86 part of `shared_info` (48 bytes): where to find the guest's P2M, for the toolstack.
#[repr(C)]
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ArchSharedInfo {
    /// Guest-written: number of valid P2M entries.
    pub max_pfn: u64,
    /// Guest-written: MFN of the frame listing the frames that list the P2M frames (0 = not
    /// set up, `!0` = too large, use `p2m_vaddr`).
    pub pfn_to_mfn_frame_list_list: u64,
    /// Hypervisor-written: reason bits of the last NMI (dom0).
    pub nmi_reason: u64,
    /// Guest-written: CR3 of the address space where `p2m_vaddr` is valid (0 = unused).
    pub p2m_cr3: u64,
    /// Guest-written: virtual address of the linear P2M list.
    pub p2m_vaddr: u64,
    /// Guest-written: incremented around P2M mapping changes (odd = in progress).
    pub p2m_generation: u64,
}

/// `shared_info` (3136 bytes, one per domain, in its own page).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SharedInfo {
    /// Per-vCPU slots for vCPUs 0..32.
    pub vcpu_info: [VcpuInfo; MAX_VIRT_CPUS],
    /// Pending bits, one per port. Hypervisor sets, guest clears.
    pub evtchn_pending: [u64; EVTCHN_WORDS],
    /// Mask bits, one per port. Guest-owned; a masked port becomes pending without an upcall.
    pub evtchn_mask: [u64; EVTCHN_WORDS],
    /// Wallclock version counter (same protocol as `VcpuTimeInfo::version`).
    pub wc_version: u32,
    /// Wallclock seconds since the Unix epoch at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// High 32 bits of the wallclock seconds.
    pub wc_sec_hi: u32,
    /// x86 part.
    pub arch: ArchSharedInfo,
}

crate::assert_layout!(
    VcpuTimeInfo,
    size = 32,
    version = 0,
    tsc_timestamp = 8,
    system_time = 16,
    tsc_to_system_mul = 24,
    tsc_shift = 28,
    flags = 29
);
crate::assert_layout!(ArchVcpuInfo, size = 16, cr2 = 0);
crate::assert_layout!(
    VcpuInfo,
    size = 64,
    evtchn_upcall_pending = 0,
    evtchn_upcall_mask = 1,
    evtchn_pending_sel = 8,
    arch = 16,
    time = 32
);
crate::assert_layout!(
    ArchSharedInfo,
    size = 48,
    max_pfn = 0,
    pfn_to_mfn_frame_list_list = 8,
    nmi_reason = 16,
    p2m_cr3 = 24,
    p2m_vaddr = 32,
    p2m_generation = 40
);
crate::assert_layout!(
    SharedInfo,
    size = 3136,
    vcpu_info = 0,
    evtchn_pending = 2048,
    evtchn_mask = 2560,
    wc_version = 3072,
    wc_sec = 3076,
    wc_nsec = 3080,
    wc_sec_hi = 3084,
    arch = 3088
);

/// Where port `p` lives in `evtchn_pending` / `evtchn_mask`: `(word index, bit index)`. The
/// word index is also the bit to set in `evtchn_pending_sel`.
#[must_use]
pub const fn evtchn_word_bit(p: EvtchnPort) -> (usize, u32) {
    ((p.0 / 64) as usize, p.0 % 64)
}

/// Wallclock seconds from the two halves in `shared_info`.
#[must_use]
pub const fn wc_seconds(sec: u32, sec_hi: u32) -> u64 {
    ((sec_hi as u64) << 32) | sec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..Default::default()
        }
    }

    #[test]
    fn scale_identity_and_shifts() {
        // mul = 2^31 is 0.5; shift 1 doubles first: net 1 tick = 1 ns.
        let t = ti(1 << 31, 1);
        assert_eq!(t.ns_at(1000), 5_000);
        assert_eq!(t.ns_at(1000 + 12345), 5_000 + 12345);
        // Negative shift shifts right: 4 ticks per ns with mul = 2^31 and shift -1 => /4.
        let t = ti(1 << 31, -1);
        assert_eq!(t.ns_at(1000 + 400), 5_000 + 100);
    }

    #[test]
    fn scale_no_overflow_for_large_deltas() {
        let t = ti(u32::MAX, 0);
        let ns = t.scale_delta(u64::MAX);
        assert!(ns < u64::MAX);
    }

    #[test]
    fn scale_for_common_frequencies() {
        for hz in [1_000_000u64, 1_000_000_000, 2_000_000_000, 2_400_000_000, 3_000_000_000] {
            let (mul, shift) = tsc_scale_for_hz(hz).unwrap();
            let ns = scale_delta(hz, mul, shift);
            // One second of ticks is one second, within a few ns of rounding.
            assert!((999_999_990..=1_000_000_000).contains(&ns), "{hz} Hz -> {ns}");
        }
        assert_eq!(tsc_scale_for_hz(0), None);
        assert_eq!(tsc_scale_for_hz(3_000_000_000).map(|s| s.1), Some(-1));
    }

    #[test]
    fn port_positions() {
        assert_eq!(evtchn_word_bit(EvtchnPort(0)), (0, 0));
        assert_eq!(evtchn_word_bit(EvtchnPort(65)), (1, 1));
        assert_eq!(evtchn_word_bit(EvtchnPort(4095)), (63, 63));
        assert_eq!(wc_seconds(1, 2), (2 << 32) | 1);
    }
}
