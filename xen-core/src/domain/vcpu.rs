//! vCPUs as data: a vCPU's guest-visible context (registers, FPU, page-table bases, trap
//! table and callbacks), what other CPUs must reach without locking it (whether it is up or
//! blocked, its timers, where its `vcpu_info` is), and the layout of `vcpu_info`. Nothing here
//! acts on another subsystem: the scheduler, event channels and timers read and write these
//! fields, never the other way round.
//!
//! A [`Vcpu`]'s [`VcpuContext`] is locked by the CPU running it; the rest is atomic. The
//! `vcpu_info` it points at is guest memory, reached only through atomics (`mm::machine`).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use hypercall_abi::{DomId, EvtchnPort, Mfn};
use spin::Mutex;

use crate::arch::entry::GuestRegs;
use crate::arch::fpu::FxArea;
use crate::arch::time;
use crate::mm::machine;
use crate::sched::runstate::Runstate;

/// One entry of a vCPU's virtual trap table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapEntry {
    /// DPL in bits 0-1 (who may raise it with `int n`); bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}

/// A guest callback: address and whether to mask events on entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    pub address: u64,
    pub mask_events: bool,
}

/// A vCPU's guest-visible state. Registers live here only while the vCPU is not running; when
/// it runs they are in the frame on its CPU's stack.
pub struct VcpuContext {
    pub regs: GuestRegs,
    pub fpu: Box<FxArea>,
    /// Guest kernel mode (as opposed to guest user mode); both run in ring 3.
    pub kernel_mode: bool,
    /// Kernel and user base page tables (L4 MFNs; user is 0 when none). Each holds a
    /// general+type reference on its frame.
    pub guest_table: Mfn,
    pub guest_table_user: Mfn,
    /// Stack for entering kernel mode from user mode (`stack_switch`).
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    pub trap_table: Box<[TrapEntry; 256]>,
    pub event_callback: Callback,
    pub failsafe_callback: Callback,
    pub syscall_callback: Callback,
    /// 32-bit user code's `syscall` and `sysenter` entries (kept, not yet used).
    pub syscall32_callback: Callback,
    pub sysenter_callback: Callback,
    /// Virtual CR0.TS set by `fpu_taskswitch`.
    pub guest_ts: bool,
    /// Virtual I/O privilege level (`physdev_op(set_iopl)`): the guest kernel's port I/O is
    /// emulated when it is at least 1.
    pub iopl: u8,
    /// CR2, CR4, debug registers and port latches, as emulation shows them.
    pub privregs: super::PrivRegs,
    /// The guest's GDT (`set_gdt`): its frames, each holding a general and a descriptor-page
    /// type reference, and how many entries it has (0: none, the reserved selectors only).
    pub gdt_frames: [Mfn; GDT_MAX_FRAMES],
    pub gdt_ents: u32,
}

/// A guest GDT may fill the entries below the hypervisor's (14 pages of 512, as on Xen).
pub const GDT_MAX_FRAMES: usize = 14;

impl VcpuContext {
    /// What a context holds on the heap besides itself (FPU area, trap table).
    pub const HEAP_BYTES: usize =
        core::mem::size_of::<FxArea>() + core::mem::size_of::<[TrapEntry; 256]>();

    pub fn new() -> Self {
        VcpuContext {
            regs: GuestRegs::default(),
            fpu: Box::new(FxArea::initial()),
            kernel_mode: true,
            guest_table: Mfn(0),
            guest_table_user: Mfn(0),
            kernel_ss: 0,
            kernel_sp: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            trap_table: Box::new([TrapEntry::default(); 256]),
            event_callback: Callback::default(),
            failsafe_callback: Callback::default(),
            syscall_callback: Callback::default(),
            syscall32_callback: Callback::default(),
            sysenter_callback: Callback::default(),
            guest_ts: false,
            iopl: 0,
            privregs: super::PrivRegs::default(),
            gdt_frames: [Mfn(0); GDT_MAX_FRAMES],
            gdt_ents: 0,
        }
    }

    /// The frames of the guest's GDT.
    pub fn gdt(&self) -> &[Mfn] {
        &self.gdt_frames[..(self.gdt_ents as usize).div_ceil(512)]
    }
}

impl Default for VcpuContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Most ports one SCHEDOP_poll may wait on (as Xen).
pub const MAX_POLL_PORTS: usize = 128;

/// What a vCPU in SCHEDOP_poll waits for: held inline (a poll allocates nothing).
#[derive(Clone, Debug)]
pub struct PollSet {
    ports: [EvtchnPort; MAX_POLL_PORTS],
    len: usize,
}

impl PollSet {
    /// The set of `ports` (at most `MAX_POLL_PORTS`; the caller checked).
    pub fn new(ports: &[EvtchnPort]) -> Self {
        let mut p = PollSet { ports: [EvtchnPort(0); MAX_POLL_PORTS], len: ports.len() };
        p.ports[..ports.len()].copy_from_slice(ports);
        p
    }

    pub fn ports(&self) -> &[EvtchnPort] {
        &self.ports[..self.len]
    }

    /// Whether an event on `port` ends the poll (a poll on no port waits for any).
    pub fn wakes_on(&self, port: EvtchnPort) -> bool {
        self.len == 0 || self.ports().contains(&port)
    }
}

/// A virtual CPU.
pub struct Vcpu {
    pub id: u32,
    pub domain: DomId,
    /// The scheduler policy's handle.
    pub sched_id: usize,
    pub ctx: Mutex<VcpuContext>,
    /// Brought up (VCPUOP_up, or vCPU 0 at build).
    pub is_up: AtomicBool,
    /// Blocked in SCHEDOP_block/poll until an event arrives.
    pub is_blocked: AtomicBool,
    /// Nanoseconds of CPU time consumed.
    pub cpu_time_ns: AtomicU64,
    /// Where this vCPU's `vcpu_info` lives (machine frame, byte offset).
    vcpu_info_mfn: AtomicU64,
    vcpu_info_off: AtomicU64,
    /// Single-shot timer deadline in system time (ns), 0 = none.
    pub timer_deadline: AtomicU64,
    /// Periodic timer period and next deadline (ns), period 0 = none.
    pub periodic_ns: AtomicU64,
    pub periodic_next: AtomicU64,
    /// SCHEDOP_poll timeout (ns), 0 = none.
    pub poll_deadline: AtomicU64,
    pub poll: Mutex<Option<PollSet>>,
    /// Running, runnable, blocked or offline, and the time spent in each.
    pub runstate: Mutex<Runstate>,
    /// Guest virtual addresses of the areas kept up to date for it (0 = none): its runstate
    /// and a copy of its `vcpu_time_info` (`sched::areas`).
    pub runstate_area: AtomicU64,
    pub time_area: AtomicU64,
}

/// Every PV vCPU starts with a periodic VIRQ_TIMER every 10 ms, as on Xen (a kernel that
/// wants none stops it with `VCPUOP_stop_periodic_timer`, as Linux does).
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;

impl Vcpu {
    pub fn new(
        id: u32,
        domain: DomId,
        sched_id: usize,
        ctx: VcpuContext,
        vcpu_info: (Mfn, usize),
    ) -> Self {
        Vcpu {
            id,
            domain,
            sched_id,
            ctx: Mutex::new(ctx),
            is_up: AtomicBool::new(false),
            is_blocked: AtomicBool::new(false),
            cpu_time_ns: AtomicU64::new(0),
            vcpu_info_mfn: AtomicU64::new(vcpu_info.0.0),
            vcpu_info_off: AtomicU64::new(vcpu_info.1 as u64),
            timer_deadline: AtomicU64::new(0),
            periodic_ns: AtomicU64::new(DEFAULT_PERIOD_NS),
            periodic_next: AtomicU64::new(time::now_ns() + DEFAULT_PERIOD_NS),
            poll_deadline: AtomicU64::new(0),
            poll: Mutex::new(None),
            runstate: Mutex::new(Runstate::new(time::now_ns())),
            runstate_area: AtomicU64::new(0),
            time_area: AtomicU64::new(0),
        }
    }

    /// A byte of this vCPU's `vcpu_info` (shared with the guest, so atomic).
    pub fn info_byte(&self, offset: usize) -> &'static AtomicU8 {
        let (mfn, off) = self.vcpu_info();
        machine::frame_byte(mfn, off + offset)
    }

    /// A 64-bit word of this vCPU's `vcpu_info` (offset 8-aligned).
    pub fn info_word(&self, offset: usize) -> &'static AtomicU64 {
        let (mfn, off) = self.vcpu_info();
        machine::frame_word(mfn, (off + offset) / 8)
    }

    pub fn vcpu_info(&self) -> (Mfn, usize) {
        (
            Mfn(self.vcpu_info_mfn.load(Ordering::Acquire)),
            self.vcpu_info_off.load(Ordering::Acquire) as usize,
        )
    }

    /// Moves `vcpu_info` (VCPUOP_register_vcpu_info); the offset must keep it in one page.
    pub fn set_vcpu_info(&self, mfn: Mfn, offset: usize) {
        self.vcpu_info_off.store(offset as u64, Ordering::Release);
        self.vcpu_info_mfn.store(mfn.0, Ordering::Release);
    }
}

/// Offsets inside `vcpu_info` (64 bytes).
pub const VI_UPCALL_PENDING: usize = 0;
pub const VI_UPCALL_MASK: usize = 1;
pub const VI_PENDING_SEL: usize = 8;
pub const VI_CR2: usize = 16;
pub const VI_TIME: usize = 32;
