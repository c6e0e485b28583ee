//! The self-tests dom0 runs itself (`test=...`): the ones a system test needs in the
//! privileged domain while dom0 also serves a domU running the same test, because the answer
//! differs by privilege (event channels, memory reservations, I/O privilege) or needs dom0's
//! grants (`grantbench`), and dom0's own xenstored benchmark (`xsbench`). Self-tests that need
//! no domU run in the pv-guest kernel, booted as dom0.
//!
//! The shared ones are the pv-guest test kernel's files (`pv-guest/src/kernel/selftest/`),
//! compiled into this binary rather than copied: they are not part of the pv-guest runtime
//! library, and they use only the runtime and each other. This module sits at the same path as
//! their home there (`crate::kernel::selftest`), which the trap harness's macros rely on.

#[path = "../../../pv-guest/src/kernel/selftest/evtchn.rs"]
mod evtchn;
#[path = "../../../pv-guest/src/kernel/selftest/fuzz.rs"]
mod fuzz;
#[path = "../../../pv-guest/src/kernel/selftest/grants.rs"]
mod grants;
#[path = "../../../pv-guest/src/kernel/selftest/hypercall.rs"]
mod hypercall;
#[path = "../../../pv-guest/src/kernel/selftest/io.rs"]
mod io;
#[path = "../../../pv-guest/src/kernel/selftest/memory.rs"]
mod memory;
#[path = "../../../pv-guest/src/kernel/selftest/run.rs"]
mod run;
#[path = "../../../pv-guest/src/kernel/selftest/trap.rs"]
mod trap;

use dom0::xenstored::server::Xenstored;
use pv_guest::bench::{bench_line, measure};
use pv_guest::println;
use pv_guest::xenstore::Store;
use run::Test;

/// dom0's self-tests: the shared files' and its own.
const TESTS: &[&[(&str, Test)]] = &[
    hypercall::TESTS,
    evtchn::TESTS,
    fuzz::TESTS,
    memory::TESTS,
    io::TESTS,
    grants::TESTS,
    &[("xsbench", Test::Run(xenstore_bench)), ("empty-domain", Test::Check(empty_domain))],
];

/// Runs the tests named in `list`, in order.
pub fn run(list: &str) {
    run::run(list, TESTS);
}

/// Calls that name another domain's address space, on a domain domctl just made (no memory,
/// no page tables, its vCPU never set up): each is an errno, and the domain is destroyed
/// cleanly after. `update_va_mapping_otherdomain` once walked machine frame 0 as the empty
/// domain's L4 (issue 11).
fn empty_domain() -> Result<(), alloc::string::String> {
    use dom0::toolstack::ctl;
    use hypercall_abi::mmu::Uvmf;
    use hypercall_abi::{Errno, VAddr};
    let dom = ctl::create_named("empty").map_err(|e| alloc::format!("create: {e:?}"))?;
    let mut bad = alloc::vec::Vec::new();
    for (va, pte) in [(0xFFFF_FFFF_8000_0000u64, 0u64), (0x40_0000, 0x1000 | 0x67), (0, 0)] {
        #[allow(unsafe_code)]
        // SAFETY: names the new domain's address space, which has no tables: refused.
        let r = unsafe {
            hypercall_abi::guest::update_va_mapping_otherdomain(VAddr(va), pte, Uvmf::NONE, dom)
        };
        if r != Err(Errno::EINVAL) {
            bad.push(alloc::format!("update_va_mapping_otherdomain({va:#x}, {pte:#x}): {r:?}"));
        }
    }
    ctl::destroy(dom).map_err(|e| alloc::format!("destroy: {e:?}"))?;
    ctl::wait_gone(dom);
    if bad.is_empty() { Ok(()) } else { Err(bad.join("; ")) }
}

/// A XenStore read in dom0's own xenstored, with no ring or domain switch: the floor under a
/// domU's read over its ring (`scenario=drvbench`).
fn xenstore_bench() {
    let mut xsd = Xenstored::new();
    let mut st = xsd.local();
    if let Err(e) = st.write(0, "/local/domain/0/bench", b"value") {
        println!("TEST xsbench: FAIL write: {e:?}");
        return;
    }
    let mut bad = 0u32;
    let c = measure(11, 200, || {
        bad += u32::from(st.read(0, "/local/domain/0/bench").is_err());
    });
    bench_line("xenstore-read-dom0-local", c);
    if bad > 0 {
        println!("TEST xsbench: FAIL {bad} reads failed");
    }
}
