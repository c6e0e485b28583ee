//! The hypercall fuzzer (`scenario=fuzz` in a domU, `test=fuzz` in dom0; `seed=<n>
//! count=<n>`): random hypercall numbers (any 64-bit number in multicall entries), sub-ops,
//! counts and arguments, with pointers into the caller's own memory, read-only memory, the hypervisor, the unmapped lower half, the
//! non-canonical hole, and frame numbers of its own, other domains', the hypervisor's and
//! beyond RAM; random multicall batches (nested ones included). The hypervisor must answer
//! each with a result and neither fault nor hang; the fuzzer must survive, so it keeps out of
//! what would end or wedge itself on Xen too (see [`allowed`] and [`Fuzzer::fix_args`]):
//!
//! - never: `iret` (returns to a frame popped from the stack), `stack_switch` (the next trap
//!   would use a random stack), `sched_op` block/shutdown/poll/remote_shutdown/shutdown_code/
//!   watchdog (end or block the domain), `vcpu_op` down/register_vcpu_info/send_nmi (stops the
//!   only vCPU, moves its event state, raises an NMI with no handler), `mmuext_op
//!   NEW_BASEPTR` (a random L4), `event_channel_op` reset/init_control/reset_cont and
//!   close/bind_vcpu of the ports the kernel uses (its console, XenStore, timer), `grant_table
//!   set_version` (its console and XenStore grants are v1);
//! - page-table writes only in a 2 MiB region of its own (an L1 it hooks in for this) and in
//!   its scratch pages; mappings (`update_va_mapping`, grant maps) only there, in its guard
//!   hole, or at addresses it does not own; the frame numbers it names are its scratch pages,
//!   its page tables, and frames that are not its own;
//! - the handlers it may replace (trap table, callbacks, NMI callback, FPU TS, DR7) are put
//!   back after each call; events stay masked meanwhile.
//!
//! dom0 (privileged) also keeps out of what would take the machine or another domain down
//! (Xen would let it): `domctl`, `platform_op`, `physdev_op` but `irq_status_query` (no IRQ
//! routing, no IOPL change: its drivers need port I/O), `bind_pirq`, domain ids other than
//! itself or domains that do not exist (`foreigndom`, and the domain fields of the
//! `memory_op`, grant and event-channel structures it crafts; their other fields stay
//! random), I/O memory (`DOMID_IO`, frames beyond RAM), and console writes that succeed
//! (dom0's go to the serial line raw, unlimited). At the end the
//! fuzzer closes the ports it opened and stops its timers, so the kernel that goes on (dom0
//! serves its domUs after its self-tests) finds its event channels as it left them.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::guest::{self, raw};
use hypercall_abi::mmu::{MmuUpdate, MmuextOp};
use hypercall_abi::multicall::MulticallEntry;
use hypercall_abi::{DomId, Errno, Mfn, PAddr, nr};
use pv_guest::arch::VIRT_BASE;
use pv_guest::memory::{pages, shared};
use pv_guest::{println, time};

use super::run::Test;

/// The self-tests of this file, by the name `test=` gives them (`seed=`, `count=` from the
/// command line).
pub const TESTS: &[(&str, Test)] = &[("fuzz", Test::Run(from_cmdline))];

fn from_cmdline() {
    run(pv_guest::cmdline(pv_guest::start_info()));
}

/// Flags of a page-table entry naming a lower table: present, rw, user, accessed.
const TABLE: u64 = 0x27;
/// A read-only data mapping: present, user, accessed.
const READ_ONLY: u64 = 0x25;
/// The hypervisor's image (its first machine frames).
const HV_FRAME: u64 = 0x200;
/// The hypervisor's slots of every address space (L4 256-271).
const HV_VA: u64 = 0xFFFF_8000_0000_0000;
const DOMID_SELF: u64 = 0x7FF0;
/// dom0: the first bytes of its scratch where only the structures it crafts go.
const CRAFT: u64 = 2 * 4096;

/// The kernel's L2 (machine frame, and its address in the boot mapping, where the builder
/// maps every bootstrap table read-only).
pub fn kernel_l2() -> Option<(Mfn, u64)> {
    let si = pv_guest::start_info();
    let l4_index = ((VIRT_BASE >> 39) & 511) as usize;
    let l3 = shared::read_table_entry(si.pt_base.0, l4_index);
    let l3_va = VIRT_BASE + shared::m2p_entry((l3 & 0x000F_FFFF_FFFF_F000) >> 12) * 4096;
    let l2 = shared::read_table_entry(l3_va, ((VIRT_BASE >> 30) & 511) as usize);
    if l3 & l2 & 1 == 0 {
        return None;
    }
    let mfn = (l2 & 0x000F_FFFF_FFFF_F000) >> 12;
    Some((Mfn(mfn), VIRT_BASE + shared::m2p_entry(mfn) * 4096))
}

/// An empty entry of the kernel's L2 past the boot mapping: its index (2 MiB of address space
/// at `VIRT_BASE + index * 2 MiB`).
pub fn free_l2_index(l2_va: u64) -> Option<usize> {
    let first = ((pages::boot_region_end(pv_guest::start_info()) - VIRT_BASE) >> 21) as usize;
    (first..512).find(|&i| shared::read_table_entry(l2_va, i) == 0)
}

/// One validated write of entry `index` of this domain's page table `table`.
pub fn write_entry(table: Mfn, index: usize, val: u64) -> Result<u64, Errno> {
    let req = [MmuUpdate::normal(PAddr((table.0 << 12) + index as u64 * 8), val)];
    #[allow(unsafe_code)]
    // SAFETY: the request names one of this kernel's own tables; the hypervisor validates it,
    // and the callers only write entries the kernel does not use.
    let (r, _) = unsafe { guest::mmu_update(&req, DomId::SELF_) };
    r
}

/// The last call made (number, five arguments), for [`on_exception`].
static LAST: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
/// The call before it.
static PREV: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// The fuzzer's exception hook: an exception here means the fuzzer broke itself (or the
/// hypervisor handed it one it should not have), so it names the last call before the kernel
/// reports the exception and crashes.
fn on_exception(frame: &mut pv_guest::arch::TrapFrame) -> bool {
    // vcpu_info[0].arch.cr2 in shared_info: where a page fault was.
    let cr2 = pv_guest::events::shared_info().u64_at(16).load(Ordering::Relaxed);
    println!(
        "FUZZ: exception {} (error {:#x}, cr2 {cr2:#x}) at {:#x}",
        frame.vector, frame.error_code, frame.rip
    );
    for (which, calls) in [("last", &LAST), ("before", &PREV)] {
        let l: [u64; 6] = core::array::from_fn(|i| calls[i].load(Ordering::Relaxed));
        println!(
            "FUZZ: {which} hypercall {} ({:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
            l[0], l[1], l[2], l[3], l[4], l[5]
        );
    }
    false
}

/// Runs `count` random hypercalls from `seed`, then prints a `FUZZ done` line.
pub fn run(line: &str) {
    let seed: u64 = pv_guest::cmdline_param(line, "seed", 1);
    let count: u64 = pv_guest::cmdline_param(line, "count", 10_000);
    let mut f = match Fuzzer::new(seed) {
        Ok(f) => f,
        Err(e) => return println!("FUZZ: FAIL setup: {e}"),
    };
    println!("FUZZ start: seed {seed} count {count} privileged {}", f.privileged);
    pv_guest::traps::set_exception_hook(on_exception);
    let t0 = time::now_ns();
    for i in 0..count {
        f.one();
        if let Some(what) = f.broken() {
            let l: [u64; 6] = core::array::from_fn(|i| LAST[i].load(Ordering::Relaxed));
            println!("FUZZ: call {i} ({l:x?}) broke the fuzzer's own {what}");
            if l[0] == nr::MULTICALL {
                f.show_batch();
            }
            break;
        }
    }
    f.clean_up();
    pv_guest::traps::set_exception_hook(|_| false);
    // Alive and able: a hypercall, and a page walk of its own tables.
    let alive = guest::xen_version(0).is_ok() && pages::l1_slot_of(f.scratch).is_some();
    println!(
        "FUZZ done: seed {seed} count {count}: {} hypercalls ({} in multicalls), {} ok, {} errors, in {} ms; fuzzer alive: {alive}",
        f.calls,
        f.nested,
        f.ok,
        f.calls - f.ok,
        (time::now_ns() - t0) / 1_000_000
    );
}

/// The fuzzer's memory and counters.
struct Fuzzer {
    rng: u64,
    privileged: bool,
    me: u64,
    /// Four writable scratch pages (random contents), an unmapped guard page, a page of
    /// page-table requests, a second guard, a page of multicall entries, a third guard. Only
    /// the fuzzer writes the request and batch pages (the hypervisor reads requests and calls
    /// from nowhere else: a count running past their end faults at a guard): no hypercall is
    /// given their addresses or frames to write to.
    scratch: u64,
    reqs: u64,
    hole: u64,
    batch: u64,
    hole2: u64,
    hole3: u64,
    scratch_mfns: Vec<u64>,
    /// The request and batch pages' frames (never named to the hypervisor by frame).
    own_mfns: [u64; 2],
    /// The fuzzer's own L1 and the 2 MiB it maps.
    region_l1: u64,
    region: u64,
    kernel_tables: Vec<u64>,
    reserved_ports: Vec<u32>,
    max_ram: u64,
    /// dom0: the next free byte of its crafting area ([`Self::craft_at`]).
    craft_next: u64,
    calls: u64,
    nested: u64,
    ok: u64,
}

impl Fuzzer {
    fn new(seed: u64) -> Result<Self, &'static str> {
        let si = pv_guest::start_info();
        let privileged = si.flags & 1 != 0;
        let page = || pages::alloc_page().ok_or("no page");
        let s: Vec<pages::OwnPage> = (0..4).map(|_| page()).collect::<Result<_, _>>()?;
        let (hole, reqs, hole2, batch, hole3) = (page()?, page()?, page()?, page()?, page()?);
        let layout = [s[0], s[1], s[2], s[3], hole, reqs, hole2, batch, hole3];
        if layout.windows(2).any(|w| w[1].va() != w[0].va() + 4096) {
            return Err("scratch pages are not contiguous");
        }
        for h in [hole, hole2, hole3] {
            if write_entry_at(h.va(), 0).is_err() {
                return Err("could not unmap a guard page");
            }
        }
        // The fuzzer's own L1, hooked into an empty entry of the kernel's L2.
        let l1 = page()?;
        write_entry_at(l1.va(), (l1.mfn().0 << 12) | READ_ONLY).map_err(|_| "remap L1")?;
        let (l2, l2_va) = kernel_l2().ok_or("no L2")?;
        let index = free_l2_index(l2_va).ok_or("no free L2 entry")?;
        write_entry(l2, index, (l1.mfn().0 << 12) | TABLE).map_err(|_| "hook L1")?;
        let kernel_tables = (0..si.nr_pt_frames)
            .filter_map(|i| pages::virt_to_mfn(si.pt_base.0 + i * 4096).map(|m| m.0))
            .collect();
        let me = guest::own_domid().map(|d| u64::from(d.0)).unwrap_or(DOMID_SELF);
        let reserved_ports = (1..4096u32)
            .filter(|&p| {
                guest::evtchn_status(DomId::SELF_, hypercall_abi::EvtchnPort(p))
                    .is_ok_and(|st| st.status != hypercall_abi::event_channel::EVTCHNSTAT_CLOSED)
            })
            .collect();
        Ok(Fuzzer {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            privileged,
            me,
            scratch: s[0].va(),
            reqs: reqs.va(),
            hole: hole.va(),
            batch: batch.va(),
            hole2: hole2.va(),
            hole3: hole3.va(),
            scratch_mfns: s.iter().map(|p| p.mfn().0).collect(),
            own_mfns: [reqs.mfn().0, batch.mfn().0],
            region_l1: l1.mfn().0,
            region: VIRT_BASE + ((index as u64) << 21),
            kernel_tables,
            reserved_ports,
            max_ram: guest::maximum_ram_page().unwrap_or(0),
            craft_next: 0,
            calls: 0,
            nested: 0,
            ok: 0,
        })
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    /// A small or boundary integer, or a random one.
    fn int(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => self.below(4),
            2 => self.below(64),
            3 => (1u64 << self.below(64)).wrapping_add(self.below(3)).wrapping_sub(1),
            4 => self.pick(&[0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000, u64::MAX, 0x1_0000_0000]),
            5 => self.below(4096),
            _ => self.next() >> self.below(64),
        }
    }

    /// Whether `mfn` is this domain's own frame (its P2M and the M2P agree).
    fn is_own(&self, mfn: u64) -> bool {
        mfn <= self.max_ram
            && shared::p2m_entry(pv_guest::start_info(), shared::m2p_entry(mfn)) == Some(mfn)
    }

    /// A machine frame: its scratch pages, its own L1, its page tables, frames of others or
    /// free ones, the hypervisor's, beyond RAM (not dom0: that is I/O memory to it).
    fn frame(&mut self) -> u64 {
        match self.below(8) {
            0 | 1 => self.scratch_frame(),
            2 => self.region_l1,
            3 => {
                let i = self.below(self.kernel_tables.len() as u64) as usize;
                self.kernel_tables[i]
            }
            4 => HV_FRAME + self.below(0x100),
            5 if !self.privileged => self.max_ram + 1 + self.int() % (1 << 30),
            _ => {
                // Somebody else's RAM (or free): never one of its own.
                let m = 0x100 + self.below(self.max_ram.saturating_sub(0x140).max(1));
                if self.is_own(m) { HV_FRAME } else { m }
            }
        }
    }

    /// One of its scratch pages' frames (in dom0 not those of its crafting area).
    fn scratch_frame(&mut self) -> u64 {
        let first = if self.privileged { (CRAFT / 4096) as usize } else { 0 };
        let i = first + self.below((self.scratch_mfns.len() - first) as u64) as usize;
        self.scratch_mfns[i]
    }

    /// A page-table entry value naming [`Self::frame`] with random flags.
    fn pte(&mut self) -> u64 {
        let flags = match self.below(4) {
            0 => 0x67,
            1 => READ_ONLY,
            2 => 0x67 | (1 << 63),
            _ => self.next() & 0x8FF0_0000_0000_0FFF,
        };
        if self.below(16) == 0 { self.next() } else { (self.frame() << 12) | flags }
    }

    /// An address the hypervisor may map at, or that is not ours to lose: the fuzzer's
    /// region, or a [`Self::foreign_va`].
    fn map_va(&mut self) -> u64 {
        match self.below(3) {
            0 => self.region + self.below(512) * 4096 + self.below(2) * self.below(4096),
            _ => self.unmappable_va(),
        }
    }

    /// The hypervisor's slots, the lower half (the fuzzer has no tables there), the
    /// non-canonical hole: nothing the fuzzer can map at.
    fn unmappable_va(&mut self) -> u64 {
        match self.below(3) {
            0 => HV_VA + self.below(1 << 43),
            1 => self.below(1 << 47),
            _ => 0x0000_8000_0000_0000 + self.next() % (0xFFFF_0000_0000_0000),
        }
    }

    /// An address no mapping of the fuzzer's ever reaches: its guard pages (never mapped: no
    /// call is given them to map at) or an [`Self::unmappable_va`]. Where a call reads
    /// requests or calls, only these or the fuzzer's crafted pages are given: the region may
    /// map scratch pages, whose random words read as calls could be anything (a shutdown).
    fn foreign_va(&mut self) -> u64 {
        match self.below(3) {
            0 => self.pick(&[self.hole, self.hole2, self.hole3]) + self.below(4096) / 8 * 8,
            _ => self.unmappable_va(),
        }
    }

    /// Where a structure the fuzzer did not craft is read from: any [`Self::map_va`] (its
    /// region may map scratch pages of random words) in a domU; in dom0 only a
    /// [`Self::foreign_va`], since random words there could name another domain, which dom0
    /// may act on.
    fn bad_struct_ptr(&mut self) -> u64 {
        if self.privileged { self.foreign_va() } else { self.map_va() }
    }

    /// A pointer argument: into its scratch pages (near their end too, running into the
    /// guard), its page tables (mapped read-only), or any [`Self::map_va`]. Not its kernel
    /// image: the builder maps that writable, so the hypervisor may write there.
    fn ptr(&mut self) -> u64 {
        let si = pv_guest::start_info();
        match self.below(7) {
            0..=2 if self.privileged => self.scratch + CRAFT + self.below(4 * 4096 - CRAFT) / 8 * 8,
            0..=2 => self.scratch + self.below(4 * 4096) / 8 * 8,
            3 => self.hole - 8 * self.below(64),
            4 => si.pt_base.0 + self.below(si.nr_pt_frames * 4096),
            _ if self.privileged => self.unmappable_va(),
            _ => self.map_va(),
        }
    }

    /// Where the structure of `len` bytes the fuzzer crafts for a call goes. In a domU
    /// anywhere in its scratch. In dom0, in the first `CRAFT` bytes of scratch, one after the
    /// other for the calls of one batch (from [`Self::one`]): no call is given a pointer there
    /// or its frames, so what it crafted (domain fields naming itself) is what the call reads,
    /// not words another call wrote. A full area gives a pointer to a guard page instead.
    fn craft_at(&mut self, len: u64) -> u64 {
        if !self.privileged {
            return self.scratch + self.below(4 * 4096 - len.min(4096)) / 8 * 8;
        }
        let at = self.craft_next;
        if at + len > CRAFT {
            return self.hole2 + self.below(4096) / 8 * 8;
        }
        self.craft_next = (at + len).div_ceil(8) * 8;
        self.scratch + at
    }

    /// Any argument: an integer, a frame, a PTE or a pointer.
    fn arg(&mut self) -> u64 {
        match self.below(4) {
            0 => self.int(),
            1 => self.frame(),
            2 => self.pte(),
            _ => self.ptr(),
        }
    }

    /// A domain id: itself (both ways), dom0, other or absent domains, DOMID_IO/XEN/...
    /// dom0: only itself and domains that do not exist.
    fn domid(&mut self) -> u64 {
        if self.privileged {
            let absent = 0x100 + self.below(0x100);
            return self.pick(&[DOMID_SELF, self.me, absent]);
        }
        match self.below(6) {
            0 => DOMID_SELF,
            1 => self.me,
            2 => self.below(8),
            3 => 0x7FF0 + self.below(16),
            4 => self.int() & 0xFFFF,
            _ => self.next(),
        }
    }

    /// A port: not one the kernel lives on, for the ops that would take it away.
    fn port(&mut self) -> u32 {
        let p = match self.below(4) {
            0 => self.below(64),
            1 => self.below(1200),
            2 => self.int(),
            _ => self.below(4096),
        } as u32;
        if self.reserved_ports.contains(&p) { 0 } else { p }
    }

    /// A word of scratch contents (what structures behind pointers hold): never an address
    /// of the kernel's own, so a structure's host address or output pointer never names it.
    fn word(&mut self) -> u64 {
        match self.below(6) {
            0 | 1 => self.int(),
            2 => self.frame(),
            3 => self.pte(),
            4 => self.map_va(),
            _ if self.privileged => self.scratch + CRAFT + self.below(4 * 4096 - CRAFT),
            _ => self.scratch + self.below(4 * 4096),
        }
    }

    fn store(&self, va: u64, v: u64) {
        #[allow(unsafe_code)]
        // SAFETY: `va` lies in the fuzzer's scratch, request or batch pages (callers compute it
        // from those bases, 8-aligned, inside them), which nothing else uses.
        unsafe {
            (va as *mut u64).write_volatile(v);
        }
    }

    fn store16(&self, va: u64, v: u64) {
        #[allow(unsafe_code)]
        // SAFETY: as for `store`: inside the fuzzer's scratch pages, 2-aligned.
        unsafe {
            (va as *mut u16).write_volatile(v as u16);
        }
    }

    /// Refills part of the scratch pages with random words.
    fn stir(&mut self) {
        let base = self.scratch + self.below(4) * 4096;
        for _ in 0..64 {
            let at = base + self.below(512) * 8;
            let w = self.word();
            self.store(at, w);
        }
    }

    /// A page-table request array (mmu_update or mmuext_op) at a random place in the request
    /// page: its address. Targets are the fuzzer's own L1 and scratch pages, and frames not
    /// its own; never the kernel's tables.
    fn craft_requests(&mut self, ext: bool) -> u64 {
        let size = if ext { 24 } else { 16 };
        let n = 1 + self.below(16);
        let start = self.reqs + self.below(4096 / size) * size;
        for i in 0..n {
            let at = start + i * size;
            if at + size > self.reqs + 4096 {
                break;
            }
            if ext {
                let cmd = loop {
                    let c =
                        self.pick(&[0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 99]);
                    if c != 5 {
                        break c;
                    }
                };
                let arg1 = if matches!(cmd, 7 | 9 | 11) { self.map_va() } else { self.frame() };
                let arg2 = match self.below(3) {
                    0 => self.frame(),
                    1 => self.ptr(),
                    _ => self.int(),
                };
                let op = MmuextOp::new(cmd, arg1, arg2);
                self.store(at, u64::from(op.cmd));
                self.store(at + 8, op.arg1);
                self.store(at + 16, op.arg2);
            } else {
                let target = match self.below(4) {
                    0 | 1 => self.region_l1,
                    2 => self.scratch_frame(),
                    _ => {
                        let f = self.frame();
                        if self.kernel_tables.contains(&f) { self.region_l1 } else { f }
                    }
                };
                let ptr = (target << 12) | (self.below(512) * 8) | self.below(4);
                let val = if self.below(4) == 0 { self.int() } else { self.pte() };
                self.store(at, ptr);
                self.store(at + 8, val);
            }
        }
        start
    }

    /// Random arguments for hypercall `n`, within what the fuzzer keeps out of (module doc).
    /// `None`: the fuzzer does not make that call.
    fn fix_args(&mut self, n: u64, nested: bool) -> Option<[u64; 5]> {
        let mut a = [self.arg(), self.arg(), self.arg(), self.arg(), self.arg()];
        let bad_ptr = self.below(5) == 0;
        match n {
            nr::IRET | nr::STACK_SWITCH => return None,
            nr::DOMCTL | nr::PLATFORM_OP if self.privileged => return None,
            nr::MMU_UPDATE | nr::MMUEXT_OP => {
                a[0] = if bad_ptr {
                    self.foreign_va()
                } else {
                    self.craft_requests(n == nr::MMUEXT_OP)
                };
                a[1] = if self.below(4) == 0 { self.int() } else { 1 + self.below(16) };
                a[2] = if self.below(2) == 0 { 0 } else { self.ptr() };
                a[3] = self.domid();
            }
            nr::UPDATE_VA_MAPPING | nr::UPDATE_VA_MAPPING_OTHERDOMAIN => {
                a[0] = self.map_va();
                a[1] = self.pte();
                a[2] = self.int();
                a[3] = self.domid();
            }
            nr::SCHED_OP | nr::SCHED_OP_COMPAT => {
                a[0] = self.pick(&[0, 0, 7, 8, 9, 1000, u64::MAX]);
            }
            nr::VCPU_OP => {
                a[0] = loop {
                    let c = self.below(20);
                    if !matches!(c, 2 | 10 | 11) {
                        break c;
                    }
                };
                a[1] = self.pick(&[0, 0, 1, 64, u64::MAX]);
            }
            nr::EVENT_CHANNEL_OP | nr::EVENT_CHANNEL_OP_COMPAT => {
                let cmd = loop {
                    let c = self.below(17);
                    if !(matches!(c, 10 | 11 | 15) || self.privileged && c == 2) {
                        break c;
                    }
                };
                let at = self.craft_at(48);
                let body = if n == nr::EVENT_CHANNEL_OP_COMPAT { at + 8 } else { at };
                if n == nr::EVENT_CHANNEL_OP_COMPAT {
                    self.store(at, cmd);
                }
                for i in 0..4 {
                    let w = self.word();
                    self.store(body + 8 * i, w);
                }
                // close, bind_vcpu, unmask, send, status: the port is the first field.
                let p = u64::from(self.port());
                let w = self.word();
                self.store(body, (w & !0xFFFF_FFFF) | p);
                if cmd == 5 {
                    // status: {dom u16, pad, port u32}
                    let d = self.domid() & 0xFFFF;
                    self.store(body, (p << 32) | d);
                }
                if self.privileged && matches!(cmd, 0 | 6) {
                    // bind_interdomain's remote domain, alloc_unbound's two: dom0 may make
                    // ports in other domains' tables; here only in its own or none.
                    let (d1, d2) = (self.domid(), self.domid());
                    self.store16(body, d1);
                    self.store16(body + 2, d2);
                }
                a[0] = if n == nr::EVENT_CHANNEL_OP { cmd } else { at };
                a[1] = if bad_ptr { self.bad_struct_ptr() } else { at };
            }
            nr::GRANT_TABLE_OP => {
                a[0] = match self.below(14) {
                    8 => 6,
                    c => c,
                };
                a[2] = if self.below(4) == 0 { self.int() } else { 1 + self.below(8) };
                // Host addresses (map, unmap, unmap_and_replace: the first fields) name only
                // addresses the fuzzer may lose.
                use hypercall_abi::grant_table::{
                    GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef,
                };
                let stride = match a[0] {
                    0 => core::mem::size_of::<GnttabMapGrantRef>(),
                    5 => core::mem::size_of::<GnttabCopy>(),
                    _ => core::mem::size_of::<GnttabUnmapGrantRef>(),
                } as u64;
                if self.privileged && !bad_ptr {
                    // Every entry crafted (below): none names another domain.
                    a[2] = a[2].min(if nested { 2 } else { 16 });
                }
                let at = self.craft_at(stride * a[2].clamp(1, 16));
                for i in 0..a[2].min(16) {
                    let e = at + i * stride;
                    let va = self.map_va();
                    self.store(e, va);
                    if a[0] == 7 {
                        let va2 = self.map_va();
                        self.store(e + 8, va2);
                    }
                    if self.privileged {
                        // The domain fields: map's dom, copy's source and destination, the
                        // transfer's target, setup_table's.
                        let fields: &[u64] = match a[0] {
                            0 => &[16],
                            5 => &[8, 24],
                            4 => &[8],
                            2 => &[0],
                            _ => &[],
                        };
                        for &f in fields {
                            let d = self.domid();
                            self.store16(e + f, d);
                        }
                    }
                }
                a[1] = if bad_ptr { self.bad_struct_ptr() } else { at };
            }
            nr::MEMORY_OP if self.privileged => {
                // dom0 may take other domains' memory: every domain field names itself or no
                // domain (a reservation's at 24, an exchange's two at 24 and 56, the rest's at 0).
                let wild = self.int();
                a[0] = self.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 99, wild]);
                let at = self.craft_at(64);
                let fields: &[u64] = match a[0] {
                    0..=2 | 11 => &[24, 56],
                    _ => &[0],
                };
                for &f in fields {
                    let d = self.domid();
                    self.store16(at + f, d);
                }
                a[1] = if bad_ptr { self.foreign_va() } else { at };
            }
            nr::CONSOLE_IO => {
                a[0] = self.pick(&[0, 0, 1, 2, u64::MAX]);
                if self.privileged {
                    // dom0's writes go to the serial line raw: only ones that fail.
                    a[2] = self.foreign_va();
                } else if bad_ptr {
                    a[2] = self.foreign_va();
                } else {
                    // Its scratch (the kernel image would print its own strings).
                    a[1] %= 256;
                    a[2] = self.scratch + self.below(4 * 4096);
                }
            }
            nr::PHYSDEV_OP | nr::PHYSDEV_OP_COMPAT if self.privileged => {
                let cmd = self.pick(&[5, 1000]);
                if n == nr::PHYSDEV_OP {
                    a[0] = cmd;
                } else {
                    let at = self.craft_at(64);
                    self.store(at, cmd);
                    a[0] = at;
                }
            }
            nr::MULTICALL => {
                if nested {
                    // A multicall inside one: at its own batch, or anywhere.
                    a[0] = if bad_ptr { self.foreign_va() } else { self.batch };
                    a[1] = self.below(4);
                } else {
                    let count = self.craft_batch();
                    a[0] = if bad_ptr { self.foreign_va() } else { self.batch };
                    a[1] = if self.below(8) == 0 { self.int() } else { count };
                }
            }
            _ => {}
        }
        Some(a)
    }

    /// A random hypercall number: mostly defined ones, sometimes undefined ones; wild 64-bit
    /// numbers only in multicall entries (a call goes through the hypercall page, which has
    /// stubs for 0-127 only).
    fn number(&mut self, nested: bool) -> u64 {
        match self.below(10) {
            0 => 56 + self.below(72),
            1 if nested => self.next(),
            _ => self.below(56),
        }
    }

    /// Fills the batch page with 64 random entries; how many to run.
    fn craft_batch(&mut self) -> u64 {
        for i in 0..64 {
            let (n, a) = loop {
                let n = self.number(true);
                if let Some(a) = self.fix_args(n, true) {
                    break (n, a);
                }
            };
            let e = MulticallEntry::new(n, &a);
            let at = self.batch + i * 64;
            self.store(at, e.op);
            self.store(at + 8, 0);
            for (k, v) in e.args.iter().enumerate() {
                self.store(at + 16 + 8 * k as u64, *v);
            }
        }
        1 + self.below(64)
    }

    /// One random hypercall.
    fn one(&mut self) {
        self.stir();
        self.craft_next = 0;
        let (n, a) = loop {
            let n = self.number(false);
            if let Some(a) = self.fix_args(n, false) {
                break (n, a);
            }
        };
        for (i, v) in [n, a[0], a[1], a[2], a[3], a[4]].into_iter().enumerate() {
            PREV[i].store(LAST[i].swap(v, Ordering::Relaxed), Ordering::Relaxed);
        }
        #[allow(unsafe_code)]
        // SAFETY: the arguments keep out of everything the fuzzer needs (module doc): what the
        // hypervisor may write or map is its scratch, request and batch pages, its own region,
        // its guard pages, or addresses it does not own; handlers it may lose are put back
        // below, with events masked until then.
        let r = unsafe { raw::hypercall5(n, a[0], a[1], a[2], a[3], a[4]) };
        self.calls += 1;
        if n == nr::MULTICALL && r >= 0 {
            self.nested += a[1].min(64);
        }
        if r >= 0 {
            self.ok += 1;
        }
        if matches!(
            n,
            nr::SET_TRAP_TABLE
                | nr::SET_CALLBACKS
                | nr::CALLBACK_OP
                | nr::NMI_OP
                | nr::FPU_TASKSWITCH
                | nr::SET_DEBUGREG
                | nr::MULTICALL
        ) {
            self.restore();
        }
    }

    /// What of its own memory a call took away, if anything: the mappings of its scratch,
    /// request and batch pages (which it writes), checked after every call.
    fn broken(&self) -> Option<alloc::string::String> {
        let own = [self.scratch, self.scratch + 4096, self.scratch + 8192, self.scratch + 12288];
        let mfns = self.scratch_mfns.iter().chain(&self.own_mfns);
        for (va, &mfn) in own.iter().chain([&self.reqs, &self.batch]).zip(mfns) {
            let now = pages::mapped_mfn(*va).map(|m| m.0);
            if now != Some(mfn) {
                let slot = pages::l1_slot_of(*va);
                let pte = slot.map(|(l1, i)| {
                    shared::read_table_entry(VIRT_BASE + shared::m2p_entry(l1.0) * 4096, i)
                });
                return Some(alloc::format!(
                    "mapping at {va:#x}: frame {mfn:#x} is now {now:x?} (L1 slot {slot:x?}, entry {pte:x?})"
                ));
            }
        }
        None
    }

    /// Prints the batch's entries that succeeded (one of them broke something).
    fn show_batch(&self) {
        for i in 0..64u64 {
            #[allow(unsafe_code)]
            // SAFETY: the batch page is the fuzzer's own, mapped (checked by `broken`'s
            // caller only for the scratch; a batch page lost would fault here, as it should).
            let e = unsafe { ((self.batch + i * 64) as *const MulticallEntry).read_volatile() };
            if (e.result as i64) >= 0 && e.op < 64 || matches!(e.op, 1 | 12 | 14 | 20 | 22 | 26) {
                println!("FUZZ:   entry {i}: {} {:x?} -> {:#x}", e.op, e.args, e.result);
            }
        }
    }

    /// Undoes what the calls left that would disturb the kernel afterwards: ports it opened
    /// (a VIRQ it bound would be taken from the kernel's later binding), its timers.
    fn clean_up(&mut self) {
        for p in 1..4096u32 {
            if self.reserved_ports.contains(&p) {
                continue;
            }
            let port = hypercall_abi::EvtchnPort(p);
            if guest::evtchn_status(DomId::SELF_, port)
                .is_ok_and(|st| st.status != hypercall_abi::event_channel::EVTCHNSTAT_CLOSED)
            {
                let _ = guest::evtchn_close(port);
            }
        }
        let _ = guest::vcpu_stop_periodic_timer(0);
        let _ = guest::vcpu_stop_singleshot_timer(0);
        let _ = guest::set_timer_op(0);
        self.restore();
    }

    /// Puts back what a call may have replaced: trap table and callbacks, FPU TS, DR7, the
    /// NMI callback.
    fn restore(&mut self) {
        pv_guest::traps::install();
        let _ = guest::fpu_taskswitch(false);
        let _ = guest::set_debugreg(7, 0);
        let _ = guest::nmi_op_unregister();
    }
}

/// Clears or sets the PTE mapping `va` in the kernel's own tables.
fn write_entry_at(va: u64, pte: u64) -> Result<u64, Errno> {
    let (l1, idx) = pages::l1_slot_of(va).ok_or(Errno::EINVAL)?;
    write_entry(l1, idx, pte)
}
