//! The live `shared_info` page: [`AtomicSharedInfo`] has [`SharedInfo`]'s layout with every
//! field an atomic, so a guest can hold a `&'static AtomicSharedInfo` on the mapped page while
//! the hypervisor writes it, and read and update it without `unsafe`. It carries the guest's
//! half of the protocols on that page:
//!
//! - the two-level event scan ([`AtomicSharedInfo::for_each_pending`]): clear
//!   `evtchn_upcall_pending`, take the selector with an exchange, then for each selected word
//!   take `pending & !mask` and clear each bit *before* handling its port, so an event arriving
//!   meanwhile is seen on the next pass;
//! - masking a port and clearing its mask ([`AtomicSharedInfo::mask`],
//!   [`AtomicSharedInfo::clear_mask`]; to have a pending event delivered on unmask, use the
//!   `EVTCHNOP_unmask` hypercall, `guest::evtchn_unmask`);
//! - the PV "cli/sti" ([`AtomicVcpuInfo::mask_events`], [`AtomicVcpuInfo::unmask_events`]);
//! - the versioned reads of time and wallclock ([`AtomicVcpuTimeInfo::read`],
//!   [`AtomicSharedInfo::wallclock`]): retry while the version is odd or changed.
//!
//! Feature `guest` maps the page and hands out the reference (`guest::PageSlot`).

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use super::{EVTCHN_WORDS, MAX_VIRT_CPUS, SharedInfo, VcpuInfo, VcpuTimeInfo, evtchn_word_bit};
use crate::types::EvtchnPort;
use zerocopy::{FromZeros, KnownLayout};

/// [`VcpuTimeInfo`] in the live page (32 bytes), written by the hypervisor under `version`.
#[repr(C)]
#[derive(Debug, FromZeros, KnownLayout)]
pub struct AtomicVcpuTimeInfo {
    version: AtomicU32,
    pad0: AtomicU32,
    tsc_timestamp: AtomicU64,
    system_time: AtomicU64,
    tsc_to_system_mul: AtomicU32,
    /// `tsc_shift` (i8), `flags` (u8) and two bytes of padding, read as one word.
    shift_flags: AtomicU32,
}

impl AtomicVcpuTimeInfo {
    /// A consistent snapshot (Xen's version protocol): read `version`, retry while it is odd
    /// (an update is in progress), read the fields, and retry if `version` changed meanwhile.
    #[must_use]
    pub fn read(&self) -> VcpuTimeInfo {
        loop {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let tsc_timestamp = self.tsc_timestamp.load(Ordering::Relaxed);
            let system_time = self.system_time.load(Ordering::Relaxed);
            let tsc_to_system_mul = self.tsc_to_system_mul.load(Ordering::Relaxed);
            let [shift, flags, ..] = self.shift_flags.load(Ordering::Relaxed).to_le_bytes();
            // The field loads above complete before the second version load.
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v1 {
                return VcpuTimeInfo {
                    version: v1,
                    pad0: 0,
                    tsc_timestamp,
                    system_time,
                    tsc_to_system_mul,
                    tsc_shift: shift as i8,
                    flags,
                    pad1: [0; 2],
                };
            }
        }
    }

    /// Writes a snapshot under the version protocol (version odd, fields, version even): the
    /// hypervisor's side, for a hypervisor or a test that fills a page in ordinary memory.
    pub fn write(&self, t: &VcpuTimeInfo) {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.tsc_timestamp.store(t.tsc_timestamp, Ordering::Relaxed);
        self.system_time.store(t.system_time, Ordering::Relaxed);
        self.tsc_to_system_mul.store(t.tsc_to_system_mul, Ordering::Relaxed);
        let word = u32::from_le_bytes([t.tsc_shift as u8, t.flags, 0, 0]);
        self.shift_flags.store(word, Ordering::Relaxed);
        self.version.store((v.wrapping_add(1) | 1).wrapping_add(1), Ordering::Release);
    }
}

/// [`VcpuInfo`] in the live page (64 bytes).
#[repr(C)]
#[derive(Debug, FromZeros, KnownLayout)]
pub struct AtomicVcpuInfo {
    evtchn_upcall_pending: AtomicU8,
    evtchn_upcall_mask: AtomicU8,
    _pad0: [AtomicU8; 6],
    evtchn_pending_sel: AtomicU64,
    cr2: AtomicU64,
    _arch_pad: AtomicU64,
    time: AtomicVcpuTimeInfo,
}

impl AtomicVcpuInfo {
    /// Masks event upcalls (`evtchn_upcall_mask = 1`): the PV `cli`.
    pub fn mask_events(&self) {
        self.evtchn_upcall_mask.store(1, Ordering::SeqCst);
    }

    /// Unmasks event upcalls (the PV `sti`). Returns true if an upcall is already pending: the
    /// hypervisor delivers it only on its next return to the guest, so a caller that wants it
    /// now makes any hypercall (Xen's Linux uses `xen_version`), or blocks.
    #[must_use = "a pending upcall is delivered only at the next hypercall return"]
    pub fn unmask_events(&self) -> bool {
        self.evtchn_upcall_mask.store(0, Ordering::SeqCst);
        self.evtchn_upcall_pending.load(Ordering::SeqCst) != 0
    }

    /// True while upcalls are masked.
    #[must_use]
    pub fn events_masked(&self) -> bool {
        self.evtchn_upcall_mask.load(Ordering::SeqCst) != 0
    }

    /// True if the hypervisor flagged an event for this vCPU that the guest has not scanned.
    #[must_use]
    pub fn upcall_pending(&self) -> bool {
        self.evtchn_upcall_pending.load(Ordering::SeqCst) != 0
    }

    /// The address of the last page fault bounced to this vCPU (the guest cannot read CR2).
    #[must_use]
    pub fn cr2(&self) -> u64 {
        self.cr2.load(Ordering::Relaxed)
    }

    /// This vCPU's time parameters.
    #[must_use]
    pub fn time(&self) -> &AtomicVcpuTimeInfo {
        &self.time
    }
}

/// [`SharedInfo`] in the live page (3136 bytes at the start of the page).
#[repr(C)]
#[derive(Debug, FromZeros, KnownLayout)]
pub struct AtomicSharedInfo {
    vcpu_info: [AtomicVcpuInfo; MAX_VIRT_CPUS],
    evtchn_pending: [AtomicU64; EVTCHN_WORDS],
    evtchn_mask: [AtomicU64; EVTCHN_WORDS],
    wc_version: AtomicU32,
    wc_sec: AtomicU32,
    wc_nsec: AtomicU32,
    wc_sec_hi: AtomicU32,
    arch: [AtomicU64; 6],
}

crate::assert_layout!(
    AtomicVcpuTimeInfo,
    size = core::mem::size_of::<VcpuTimeInfo>(),
    version = core::mem::offset_of!(VcpuTimeInfo, version),
    tsc_timestamp = core::mem::offset_of!(VcpuTimeInfo, tsc_timestamp),
    system_time = core::mem::offset_of!(VcpuTimeInfo, system_time),
    tsc_to_system_mul = core::mem::offset_of!(VcpuTimeInfo, tsc_to_system_mul),
    shift_flags = core::mem::offset_of!(VcpuTimeInfo, tsc_shift),
);
static_assertions::const_assert_eq!(core::mem::offset_of!(VcpuTimeInfo, flags), 29);
crate::assert_layout!(
    AtomicVcpuInfo,
    size = core::mem::size_of::<VcpuInfo>(),
    evtchn_upcall_pending = core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending),
    evtchn_upcall_mask = core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask),
    evtchn_pending_sel = core::mem::offset_of!(VcpuInfo, evtchn_pending_sel),
    cr2 = core::mem::offset_of!(VcpuInfo, arch),
    time = core::mem::offset_of!(VcpuInfo, time),
);
crate::assert_layout!(
    AtomicSharedInfo,
    size = core::mem::size_of::<SharedInfo>(),
    vcpu_info = core::mem::offset_of!(SharedInfo, vcpu_info),
    evtchn_pending = core::mem::offset_of!(SharedInfo, evtchn_pending),
    evtchn_mask = core::mem::offset_of!(SharedInfo, evtchn_mask),
    wc_version = core::mem::offset_of!(SharedInfo, wc_version),
    wc_sec = core::mem::offset_of!(SharedInfo, wc_sec),
    wc_nsec = core::mem::offset_of!(SharedInfo, wc_nsec),
    wc_sec_hi = core::mem::offset_of!(SharedInfo, wc_sec_hi),
    arch = core::mem::offset_of!(SharedInfo, arch),
);

impl AtomicSharedInfo {
    /// The `vcpu_info` slot of vCPU `n` (`None` for `n >= 32`; more vCPUs need
    /// `VCPUOP_register_vcpu_info`).
    #[must_use]
    pub fn vcpu(&self, n: usize) -> Option<&AtomicVcpuInfo> {
        self.vcpu_info.get(n)
    }

    /// The pending word and bit of `port`, `None` beyond the 4096 ports of the 2-level ABI.
    fn word_bit(port: EvtchnPort) -> Option<(usize, u64)> {
        let (w, b) = evtchn_word_bit(port);
        (w < EVTCHN_WORDS).then_some((w, 1u64 << b))
    }

    /// True if `port` is pending (whether masked or not).
    #[must_use]
    pub fn is_pending(&self, port: EvtchnPort) -> bool {
        Self::word_bit(port)
            .is_some_and(|(w, bit)| self.evtchn_pending[w].load(Ordering::SeqCst) & bit != 0)
    }

    /// Clears `port`'s pending bit; true if it was set.
    pub fn clear_pending(&self, port: EvtchnPort) -> bool {
        Self::word_bit(port).is_some_and(|(w, bit)| {
            self.evtchn_pending[w].fetch_and(!bit, Ordering::SeqCst) & bit != 0
        })
    }

    /// Masks `port`: it can still become pending, but raises no upcall.
    pub fn mask(&self, port: EvtchnPort) {
        if let Some((w, bit)) = Self::word_bit(port) {
            self.evtchn_mask[w].fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// True if `port` is masked.
    #[must_use]
    pub fn is_masked(&self, port: EvtchnPort) -> bool {
        Self::word_bit(port)
            .is_some_and(|(w, bit)| self.evtchn_mask[w].load(Ordering::SeqCst) & bit != 0)
    }

    /// Clears `port`'s mask bit in the page and returns whether it is pending. Clearing the bit
    /// does not deliver an event that became pending while masked: if this returns true, the
    /// caller handles the port itself, or unmasks with the `EVTCHNOP_unmask` hypercall
    /// (`guest::evtchn_unmask`) instead, which re-raises the upcall.
    pub fn clear_mask(&self, port: EvtchnPort) -> bool {
        match Self::word_bit(port) {
            Some((w, bit)) => {
                self.evtchn_mask[w].fetch_and(!bit, Ordering::SeqCst);
                self.evtchn_pending[w].load(Ordering::SeqCst) & bit != 0
            }
            None => false,
        }
    }

    /// The two-level scan for vCPU `vcpu` (normally called from the event upcall): clears the
    /// vCPU's `evtchn_upcall_pending`, takes its selector, and for each pending, unmasked port
    /// clears the pending bit and calls `handle(port)`, in port order within a pass. Passes
    /// repeat until the selector is empty, so ports that fire during a handler are handled
    /// before this returns. Returns the number of ports handled (0 for a vCPU without a slot).
    pub fn for_each_pending(&self, vcpu: usize, mut handle: impl FnMut(EvtchnPort)) -> usize {
        let Some(v) = self.vcpu(vcpu) else { return 0 };
        let mut handled = 0;
        loop {
            // Cleared before the scan: an event that lands after this sets it again, and the
            // next pass (or the next upcall) sees it.
            v.evtchn_upcall_pending.store(0, Ordering::SeqCst);
            let sel = v.evtchn_pending_sel.swap(0, Ordering::SeqCst);
            if sel == 0 {
                return handled;
            }
            for w in (0..EVTCHN_WORDS).filter(|w| sel & (1 << w) != 0) {
                let ready = self.evtchn_pending[w].load(Ordering::SeqCst)
                    & !self.evtchn_mask[w].load(Ordering::SeqCst);
                for b in (0..64).filter(|b| ready & (1u64 << b) != 0) {
                    self.evtchn_pending[w].fetch_and(!(1u64 << b), Ordering::SeqCst);
                    handle(EvtchnPort((w * 64 + b) as u32));
                    handled += 1;
                }
            }
        }
    }

    /// Marks `port` pending for `vcpu` the way the hypervisor does (pending bit, then selector
    /// and upcall flag if the port is unmasked): for tests of guest code against a page in
    /// ordinary memory.
    pub fn raise(&self, vcpu: usize, port: EvtchnPort) {
        let (Some((w, bit)), Some(v)) = (Self::word_bit(port), self.vcpu(vcpu)) else { return };
        let was = self.evtchn_pending[w].fetch_or(bit, Ordering::SeqCst);
        if was & bit == 0 && self.evtchn_mask[w].load(Ordering::SeqCst) & bit == 0 {
            v.evtchn_pending_sel.fetch_or(1 << w, Ordering::SeqCst);
            v.evtchn_upcall_pending.store(1, Ordering::SeqCst);
        }
    }

    /// System time in ns at TSC value `tsc` on vCPU `vcpu` (a consistent read of its time
    /// parameters, then the scaling); `None` for a vCPU without a slot. Feature `guest` has
    /// `guest::system_time_ns`, which reads the TSC itself.
    #[must_use]
    pub fn system_time_at(&self, vcpu: usize, tsc: u64) -> Option<u64> {
        Some(self.vcpu(vcpu)?.time.read().ns_at(tsc))
    }

    /// Wallclock at system time 0: `(seconds since the Unix epoch, nanoseconds)`, read under
    /// `wc_version` like the time parameters.
    #[must_use]
    pub fn wallclock(&self) -> (u64, u32) {
        loop {
            let v1 = self.wc_version.load(Ordering::Acquire);
            if v1 & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let sec = super::wc_seconds(
                self.wc_sec.load(Ordering::Relaxed),
                self.wc_sec_hi.load(Ordering::Relaxed),
            );
            let nsec = self.wc_nsec.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.wc_version.load(Ordering::Relaxed) == v1 {
                return (sec, nsec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn page() -> Box<AtomicSharedInfo> {
        Box::new(AtomicSharedInfo::new_zeroed())
    }

    #[test]
    fn scan_handles_each_unmasked_port_once_and_clears_it() {
        let s = page();
        for p in [3, 64, 65, 4095] {
            s.raise(0, EvtchnPort(p));
        }
        s.mask(EvtchnPort(7));
        s.raise(0, EvtchnPort(7));
        assert!(s.vcpu(0).unwrap().upcall_pending());
        let mut seen = Vec::new();
        assert_eq!(s.for_each_pending(0, |p| seen.push(p.0)), 4);
        assert_eq!(seen, [3, 64, 65, 4095]);
        assert!(!s.is_pending(EvtchnPort(3)));
        assert!(s.is_pending(EvtchnPort(7)), "a masked port stays pending");
        assert!(!s.vcpu(0).unwrap().upcall_pending());
        assert_eq!(s.for_each_pending(0, |_| panic!("nothing left")), 0);
        // Unmasking in the page reports the pending event instead of delivering it.
        assert!(s.clear_mask(EvtchnPort(7)));
        assert!(!s.is_masked(EvtchnPort(7)));
        assert!(s.clear_pending(EvtchnPort(7)));
        assert!(!s.clear_pending(EvtchnPort(7)));
    }

    #[test]
    fn ports_raised_by_a_handler_are_handled_in_the_same_call() {
        let s = page();
        s.raise(0, EvtchnPort(1));
        let mut seen = Vec::new();
        s.for_each_pending(0, |p| {
            seen.push(p.0);
            if p.0 == 1 {
                s.raise(0, EvtchnPort(200));
            }
        });
        assert_eq!(seen, [1, 200]);
    }

    #[test]
    fn out_of_range_ports_and_vcpus_are_ignored() {
        let s = page();
        s.raise(0, EvtchnPort(4096));
        s.mask(EvtchnPort(u32::MAX));
        assert!(!s.is_pending(EvtchnPort(4096)) && !s.is_masked(EvtchnPort(u32::MAX)));
        assert!(s.vcpu(32).is_none());
        assert_eq!(s.for_each_pending(40, |_| {}), 0);
    }

    #[test]
    fn event_mask_is_the_pv_cli() {
        let s = page();
        let v = s.vcpu(1).unwrap();
        v.mask_events();
        assert!(v.events_masked());
        s.raise(1, EvtchnPort(9));
        assert!(v.unmask_events(), "the pending upcall is reported");
        assert!(!v.events_masked());
    }

    #[test]
    fn time_round_trips_through_the_version_protocol() {
        let s = page();
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: -1,
            flags: 1,
            ..Default::default()
        };
        let live = s.vcpu(0).unwrap().time();
        live.write(&t);
        let got = live.read();
        assert_eq!(got.version % 2, 0);
        assert_eq!((got.tsc_shift, got.flags, got.system_time), (-1, 1, 5_000));
        assert_eq!(s.system_time_at(0, 1400), Some(5_100));
        assert_eq!(s.system_time_at(99, 0), None);
        assert_eq!(s.wallclock(), (0, 0));
    }
}
