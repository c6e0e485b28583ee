//! Self-tests the pv-guest kernel runs when its command line says `test=<name>[+<name>...]`:
//! each checks one promise of the hypervisor from inside a guest (or measures one path) and
//! prints `TEST <name>: PASS` or `TEST <name>: FAIL <why>` (benchmarks: `BENCH` lines), which
//! the system tests look for on the serial line. This kernel boots as a domU or as dom0, so
//! most run in either; the results differ where the ABI says privilege matters.
//!
//! One file per part of the ABI: `hypercall` (numbers, pointers, multicalls), `cpu`
//! (exceptions, privileged instructions, FPU state, a fault with no handler), `emul` (what
//! the hypervisor emulates: page-table writes, MSRs, control and debug registers, CPUID),
//! `evtchn`, `memory` (reservations), `io` (I/O privilege), `grants` (map/copy, timed), `vcpu`
//! (runstate and time areas, periodic timer), `bench` (micro-benchmarks), `fuzz` (the
//! hypercall fuzzer, also `scenario=fuzz`); `trap` is the
//! harness for instructions that trap and `run` the runner.
//!
//! dom0 runs the self-tests a system test needs in the privileged domain while dom0 also
//! serves domUs (`evtchn`, `memory`, `iopl`, `grantbench`, ...): it mounts `run`, `trap`,
//! `hypercall`, `evtchn`, `fuzz`, `memory`, `io` and `grants` from this folder into its own binary
//! (`dom0/src/kernel/selftest.rs`), so these files use only the runtime (`pv_guest::`) and each
//! other, never the rest of this kernel.

pub mod bench;
pub mod cpu;
pub mod emul;
pub mod evtchn;
pub mod fuzz;
pub mod grants;
pub mod hypercall;
pub mod io;
pub mod memory;
pub mod run;
pub mod trap;
pub mod vcpu;

/// Every self-test.
const TESTS: &[&[(&str, run::Test)]] = &[
    hypercall::TESTS,
    cpu::TESTS,
    emul::TESTS,
    evtchn::TESTS,
    fuzz::TESTS,
    memory::TESTS,
    io::TESTS,
    grants::TESTS,
    bench::TESTS,
    vcpu::TESTS,
];

/// Runs the tests named in `list`, in order.
pub fn run(list: &str) {
    run::run(list, TESTS);
}
