//! A minimal Xen PV kernel written against `hypercall-abi` alone. It boots on xen-core and on
//! Xen (as dom0 or as a domU), prints a line after each step, and powers off:
//!
//! 1. ELF notes, hypercall page and entry point, from the crate's macros;
//! 2. the console (`console_io`) and the start_info page;
//! 3. shared_info, mapped over a page of the image;
//! 4. a timer upcall: an event callback, `VIRQ_TIMER` bound to a port, a single-shot timer, and
//!    `SCHEDOP_block` until the upcall has seen the port;
//! 5. one grant copy: a page of the image granted to this domain itself and copied from
//!    through the grant into another page;
//! 6. shutdown.
//!
//! One `unsafe` block remains (the grant copy: the hypervisor writes into our memory).

#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use hypercall_abi::event_channel::Virq;
use hypercall_abi::grant_table::{GNTCOPY_SOURCE_GREF, GNTST_OKAY, GnttabCopy, GnttabCopyPtr};
use hypercall_abi::guest::{self, PageSlot, Start};
use hypercall_abi::sched::ShutdownReason;
use hypercall_abi::{DomId, Errno, GrantFrame, GrantRef, Pfn};

/// Prints a line on the console.
macro_rules! say {
    ($($t:tt)*) => { print_line(format_args!($($t)*)) };
}

/// Where the image is linked (kernel.ld) and where the builder maps pseudo-physical frame 0.
const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;

// 1. What makes this ELF file a PV kernel: Xen's notes, the hypercall page, the entry point.
hypercall_abi::xen_elf_notes! {
    entry: "_start",
    hypercall_page: "hypercall_page",
    virt_base: VIRT_BASE,
    guest_os: "minimal-kernel",
    guest_version: "0.1",
    // Nothing required: this kernel never writes a page table itself. (Linux writes
    // "!writable_page_tables" here, which xen-core refuses.)
    features: "",
    // XENFEAT_dom0: Xen boots a dom0 kernel only if it says it can be one.
    supported_features: 1 << hypercall_abi::version::XENFEAT_DOM0,
}
hypercall_abi::hypercall_page!();
hypercall_abi::pv_start!(kernel_main);

/// Pages mapped over by shared pages: the shared_info page and our grant table's first frame.
static SHARED_INFO: PageSlot = PageSlot::new();
static GRANT_TABLE: PageSlot = PageSlot::new();

/// A page of the image to grant, and one to copy into. The hypervisor writes `COPY_DST`
/// behind the compiler's back, so it is made of atomics.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
#[repr(C, align(4096))]
struct AtomicPage([AtomicU8; 4096]);
const MESSAGE: &[u8] = b"copied through a grant";
static COPY_SRC: Page = Page(padded(MESSAGE));
static COPY_DST: AtomicPage = AtomicPage([const { AtomicU8::new(0) }; 4096]);

const fn padded(msg: &[u8]) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    let mut i = 0;
    while i < msg.len() {
        page[i] = msg[i];
        i += 1;
    }
    page
}

/// What the event upcall reports to the main code.
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);
static UPCALLS: AtomicU32 = AtomicU32::new(0);

/// The event upcall: scan shared_info's pending bits (which also clears them, so the
/// hypervisor does not bounce straight back here) and note the timer's port.
fn on_event() {
    UPCALLS.fetch_add(1, Ordering::SeqCst);
    let Some(shared) = SHARED_INFO.shared_info() else { return };
    let timer = TIMER_PORT.load(Ordering::SeqCst);
    shared.for_each_pending(0, |port| {
        if port.0 == timer {
            TIMER_FIRED.store(true, Ordering::SeqCst);
        }
    });
}
hypercall_abi::event_upcall!(fn upcall_entry => on_event);

fn kernel_main(start: Start) -> ! {
    match run(start) {
        Ok(()) => {
            say!("all steps passed: powering off");
            shutdown(ShutdownReason::Poweroff)
        }
        Err((step, e)) => {
            say!("FAIL {step}: {e:?}");
            shutdown(ShutdownReason::Crash)
        }
    }
}

type Step = Result<(), (&'static str, Errno)>;

fn run(start: Start) -> Step {
    // 2. Console and start_info.
    say!("hello from a PV kernel built on hypercall-abi alone");
    let si = start.info();
    if !si.has_valid_magic() {
        return Err(("start_info magic", Errno::EINVAL));
    }
    let cmdline = core::str::from_utf8(si.cmdline()).unwrap_or("?");
    say!("start_info: nr_pages {}, flags {:#x}, cmdline '{cmdline}'", si.nr_pages, si.flags);
    let (major, minor) = guest::version().map_err(|e| ("xen_version", e))?;
    say!("hypervisor: Xen ABI version {major}.{minor}");

    // 3. shared_info.
    let shared = SHARED_INFO.map_shared_info(start).map_err(|e| ("map shared_info", e))?;
    let now = guest::system_time_ns(shared, 0).unwrap_or(0);
    say!(
        "shared_info mapped: system time {} ms, wallclock {} s",
        now / 1_000_000,
        shared.wallclock().0
    );

    // 4. A timer upcall.
    guest::register_event_callback(upcall_entry()).map_err(|e| ("register callback", e))?;
    // Xen starts every PV vCPU with a 10 ms periodic timer on VIRQ_TIMER; xen-core does not.
    // Stop it, so the only timer event is the one asked for below.
    guest::vcpu_stop_periodic_timer(0).map_err(|e| ("stop periodic timer", e))?;
    let port = guest::evtchn_bind_virq(Virq::TIMER, 0).map_err(|e| ("bind VIRQ_TIMER", e))?;
    TIMER_PORT.store(port.0, Ordering::SeqCst);
    let _ = shared.clear_mask(port);
    let armed = guest::system_time_ns(shared, 0).unwrap_or(0);
    guest::set_timer_op(armed + 5_000_000).map_err(|e| ("set_timer_op", e))?;
    let vcpu = shared.vcpu(0).ok_or(("vcpu_info", Errno::EINVAL))?;
    while !TIMER_FIRED.load(Ordering::SeqCst) {
        // Mask, check, block: SCHEDOP_block unmasks and returns at once if an event is
        // pending, so a timer firing between the check and the block is not lost.
        vcpu.mask_events();
        if TIMER_FIRED.load(Ordering::SeqCst) {
            break;
        }
        guest::sched_block().map_err(|e| ("block", e))?;
    }
    vcpu.mask_events();
    let waited = guest::system_time_ns(shared, 0).unwrap_or(0).saturating_sub(armed);
    let upcalls = UPCALLS.load(Ordering::SeqCst);
    say!("timer upcall on port {} after {} us ({upcalls} upcalls)", port.0, waited / 1000);

    // 5. One grant copy: grant a page of ours to ourselves, copy from the grant into another.
    let me = guest::own_domid().map_err(|e| ("own domid", e))?;
    let table = GRANT_TABLE.map_grant_table().map_err(|e| ("map grant table", e))?;
    let src_mfn = frame_of(start, core::ptr::from_ref(&COPY_SRC) as u64)?;
    let dst_mfn = frame_of(start, core::ptr::from_ref(&COPY_DST) as u64)?;
    let gref = GrantRef(8); // 0-7 are the toolstack's
    let frame = GrantFrame::try_from(src_mfn).map_err(|_| ("grant frame", Errno::E2BIG))?;
    table[gref.0 as usize].permit_access(me, frame, true).map_err(|_| ("grant", Errno::EBUSY))?;
    let mut op = [GnttabCopy {
        // The grant's owner by its real id: xen-core refuses DOMID_SELF here (Xen accepts it).
        source: GnttabCopyPtr::gref(me, gref, 0),
        dest: GnttabCopyPtr::gmfn(DomId::SELF_, dst_mfn.into(), 0),
        len: MESSAGE.len() as u16,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    }];
    #[allow(unsafe_code)]
    // SAFETY: the only memory of ours the copy writes is COPY_DST, which Rust code accesses
    // only through atomics.
    let r = unsafe { guest::gnttab_copy(&mut op) };
    r.map_err(|e| ("GNTTABOP_copy", e))?;
    if op[0].status != GNTST_OKAY {
        let name = hypercall_abi::grant_table::gntst_name(op[0].status).unwrap_or("?");
        say!("grant copy status {} ({name})", op[0].status);
        return Err(("GNTTABOP_copy status", Errno::EIO));
    }
    table[gref.0 as usize].end_access().map_err(|_| ("end grant", Errno::EBUSY))?;
    let mut got = [0u8; MESSAGE.len()];
    for (b, a) in got.iter_mut().zip(&COPY_DST.0) {
        *b = a.load(Ordering::Relaxed);
    }
    if got != MESSAGE {
        return Err(("grant copy contents", Errno::EIO));
    }
    let text = core::str::from_utf8(&got).unwrap_or("?");
    say!("grant copy from gref {} of d{}: {} bytes, '{text}'", gref.0, me.0, got.len());
    Ok(())
}

/// The machine frame behind an address of the image, from the P2M list.
fn frame_of(start: Start, va: u64) -> Result<hypercall_abi::Mfn, (&'static str, Errno)> {
    let pfn = Pfn((va - VIRT_BASE) >> 12);
    start.p2m().pfn_to_mfn(pfn).ok_or(("P2M lookup", Errno::EINVAL))
}

fn shutdown(reason: ShutdownReason) -> ! {
    loop {
        let _ = guest::sched_shutdown(reason);
    }
}

/// `console_io` output, a line at a time, through a buffer on the stack.
struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn print_line(args: fmt::Arguments<'_>) {
    let mut line = Line { buf: [0; 200], len: 0 };
    let _ = line.write_fmt(format_args!("minimal-kernel: {args}\n"));
    let _ = guest::console_io_write(&line.buf[..line.len]);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("panic: {info}");
    shutdown(ShutdownReason::Crash)
}
