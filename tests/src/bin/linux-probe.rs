//! Runs inside a Linux domU (the Linux system tests put it in the initramfs, built static for
//! `x86_64-unknown-linux-gnu`): what a PV Linux must get right for user space beyond a shell,
//! each mode printing one `<NAME>-TEST:` line, PASS with what it did or FAIL with what went
//! wrong, and `bench` the lmbench-style figures of docs/BENCHMARKS.md.
//!
//! - `tls`: threads with thread-local storage (clone, futex, a FS base per thread through
//!   `arch_prctl`, context switches).
//! - `mmap <MiB>`: map, touch, check and unmap that much memory, many times (page faults,
//!   page-table pages made and freed: the writable-page-table path).
//! - `signals`: handlers run on delivery, `sigprocmask` blocks and unblocks, a child is
//!   killed and reaped.
//! - `forkexec <n>`: runs `/bin/true` n times (fork, exec, exit, wait).
//! - `sysregs`: after a system call, rcx holds the address after the `syscall` and r11 the
//!   flags, as `sysret` leaves them (the x86-64 ABI user space sees; under a PV kernel the
//!   hypervisor's `iret` with VGCF_in_syscall must give the same, not the kernel's own rcx).
//! - `bench`: null syscall, fork+exit, fork+exec, pipe round trip, page fault, mmap of 16 MiB.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (name, result) = match args.first().map(String::as_str).unwrap_or("tls") {
        "tls" => ("TLS", tls()),
        "mmap" => ("MMAP", mmap_churn(arg(1, 64) as usize)),
        "signals" => ("SIGNAL", signals()),
        "forkexec" => ("FORKEXEC", forkexec(arg(1, 1000))),
        "sysregs" => ("SYSREGS", sysregs()),
        "bench" => {
            bench();
            return;
        }
        other => ("PROBE", Err(format!("unknown mode {other}"))),
    };
    match result {
        Ok(what) => println!("{name}-TEST: PASS {what}"),
        Err(why) => {
            println!("{name}-TEST: FAIL {why}");
            std::process::exit(1);
        }
    }
}

fn sysregs() -> Result<String, String> {
    for _ in 0..1000 {
        let (rcx, r11, after): (u64, u64, u64);
        // SAFETY: getppid has no arguments and no effect; rcx and r11 are declared clobbered
        // outputs, as the syscall instruction clobbers them.
        unsafe {
            std::arch::asm!(
                "lea 2f(%rip), {after}",
                "syscall",
                "2:",
                after = out(reg) after,
                inout("rax") libc::SYS_getppid => _,
                out("rcx") rcx,
                out("r11") r11,
                options(att_syntax, nostack),
            );
        }
        if rcx != after {
            return Err(format!("rcx {rcx:#x} after a syscall, not its return address {after:#x}"));
        }
        // IF and the always-one bit 1 at least; nothing from the kernel's side.
        if r11 & 0x202 != 0x202 || r11 >> 22 != 0 {
            return Err(format!("r11 {r11:#x} after a syscall is not user flags"));
        }
    }
    Ok("1000 syscalls: rcx = return address, r11 = flags".into())
}

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

fn tls() -> Result<String, String> {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 100_000;
    // Each thread counts in its own TLS slot, meeting the others at a barrier halfway so they
    // really run interleaved, then reports what its slot says.
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (1..=THREADS)
        .map(|id| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    COUNTER.with(|c| c.set(c.get() + id));
                    if round == ROUNDS / 2 {
                        barrier.wait();
                    }
                    if round % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
                (id, COUNTER.with(Cell::get))
            })
        })
        .collect();
    let mut bad = Vec::new();
    for h in handles {
        match h.join() {
            Ok((id, got)) if got == id * ROUNDS => {}
            Ok((id, got)) => bad.push(format!("thread {id} counted {got}, not {}", id * ROUNDS)),
            Err(_) => bad.push("a thread panicked".to_string()),
        }
    }
    // The main thread's slot was never touched by the others.
    let main_count = COUNTER.with(Cell::get);
    if main_count != 0 {
        bad.push(format!("main thread's counter is {main_count}"));
    }
    if bad.is_empty() {
        Ok(format!("{THREADS} threads x {ROUNDS} rounds, thread-local counters apart"))
    } else {
        Err(bad.join("; "))
    }
}

fn map(len: usize) -> Result<*mut u8, String> {
    // SAFETY: an anonymous private mapping at an address the kernel picks; nothing aliases it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap of {len} bytes failed"));
    }
    Ok(p.cast())
}

fn unmap(p: *mut u8, len: usize) -> Result<(), String> {
    // SAFETY: `p` is a mapping of `len` bytes made by `map`, no longer used.
    if unsafe { libc::munmap(p.cast(), len) } != 0 {
        return Err("munmap failed".into());
    }
    Ok(())
}

fn mmap_churn(mib: usize) -> Result<String, String> {
    const ROUNDS: usize = 8;
    let len = mib << 20;
    for round in 0..ROUNDS {
        let p = map(len)?;
        // Touch every page with a pattern, then check it: faults, fresh page tables, COW-less.
        for off in (0..len).step_by(4096) {
            // SAFETY: off < len, inside the mapping just made.
            unsafe { p.add(off).write_volatile((off / 4096 + round) as u8) };
        }
        for off in (0..len).step_by(4096) {
            // SAFETY: as above.
            let got = unsafe { p.add(off).read_volatile() };
            if got != (off / 4096 + round) as u8 {
                return Err(format!("round {round}: page {} reads {got}", off / 4096));
            }
        }
        unmap(p, len)?;
    }
    Ok(format!("{ROUNDS} x {mib} MiB mapped, written, checked, unmapped"))
}

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

fn signals() -> Result<String, String> {
    // SAFETY: installs a handler that only touches an atomic; sends signals to ourselves and
    // to a child we forked, whose only job is to wait to be killed.
    unsafe {
        if libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t) == libc::SIG_ERR
        {
            return Err("signal() failed".into());
        }
        for _ in 0..100 {
            libc::raise(libc::SIGUSR1);
        }
        if SIGNALS.load(Ordering::SeqCst) != 100 {
            return Err(format!("{} of 100 signals handled", SIGNALS.load(Ordering::SeqCst)));
        }
        // Blocked: pending, not delivered; unblocked: delivered once.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGUSR1);
        let blocked = SIGNALS.load(Ordering::SeqCst);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        if blocked != 100 || SIGNALS.load(Ordering::SeqCst) != 101 {
            return Err("a blocked signal was delivered early or lost".into());
        }
        let child = libc::fork();
        if child == 0 {
            loop {
                libc::pause();
            }
        }
        libc::kill(child, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        if !libc::WIFSIGNALED(status) || libc::WTERMSIG(status) != libc::SIGKILL {
            return Err(format!("the killed child's status is {status:#x}"));
        }
    }
    Ok("101 handled, one held while blocked, a child killed and reaped".into())
}

fn forkexec(n: u64) -> Result<String, String> {
    for i in 0..n {
        let status = std::process::Command::new("/bin/true")
            .status()
            .map_err(|e| format!("run {i}: {e}"))?;
        if !status.success() {
            return Err(format!("run {i}: {status}"));
        }
    }
    Ok(format!("{n} runs of /bin/true"))
}

/// The median of `runs` timings of `f` (each `iters` calls), in ns per call.
fn time(runs: usize, iters: u64, mut f: impl FnMut()) -> u64 {
    let mut v: Vec<u64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as u64 / iters
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn null_syscall() {
    // SAFETY: getppid has no arguments and no effect.
    unsafe { libc::syscall(libc::SYS_getppid) };
}

fn fork_exit() {
    // SAFETY: the child exits at once without touching anything; the parent reaps it.
    unsafe {
        let c = libc::fork();
        if c == 0 {
            libc::_exit(0);
        }
        libc::waitpid(c, std::ptr::null_mut(), 0);
    }
}

/// A child that echoes each byte from one pipe to the other: the two file descriptors to use.
fn echo_child() -> (i32, i32) {
    let (mut to, mut from) = ([0; 2], [0; 2]);
    // SAFETY: pipes of this process; the child only reads and writes them, then exits.
    unsafe {
        libc::pipe(to.as_mut_ptr());
        libc::pipe(from.as_mut_ptr());
        if libc::fork() == 0 {
            let mut b = [0u8; 1];
            while libc::read(to[0], b.as_mut_ptr().cast(), 1) == 1 {
                libc::write(from[1], b.as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
    }
    (to[1], from[0])
}

fn round_trip(fds: (i32, i32)) {
    let mut b = [7u8; 1];
    // SAFETY: one byte through the pipes `echo_child` made.
    unsafe {
        libc::write(fds.0, b.as_ptr().cast(), 1);
        libc::read(fds.1, b.as_mut_ptr().cast(), 1);
    }
}

fn touch_pages(pages: usize) {
    if let Ok(p) = map(pages * 4096) {
        for i in 0..pages {
            // SAFETY: inside the mapping just made.
            unsafe { p.add(i * 4096).write_volatile(1) };
        }
        let _ = unmap(p, pages * 4096);
    }
}

fn bench() {
    let line = |name: &str, ns: u64| println!("BENCH linux-{name}: {ns} ns");
    line("null-syscall", time(9, 2000, null_syscall));
    line("fork-exit", time(5, 20, fork_exit));
    line(
        "fork-exec",
        time(5, 10, || {
            let _ = std::process::Command::new("/bin/true").status();
        }),
    );
    let fds = echo_child();
    line("pipe-round-trip", time(5, 200, || round_trip(fds)));
    // SAFETY: closing our end ends the echo child's loop.
    unsafe { libc::close(fds.0) };
    const FAULT_PAGES: usize = 256;
    line("page-fault", time(5, 1, || touch_pages(FAULT_PAGES)) / FAULT_PAGES as u64);
    line(
        "mmap-16MiB",
        time(5, 10, || {
            if let Ok(p) = map(16 << 20) {
                let _ = unmap(p, 16 << 20);
            }
        }),
    );
    println!("BENCH linux-done");
}
