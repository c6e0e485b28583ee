//! `multicall(entries, count)`: runs each entry's hypercall as if called directly and stores
//! its result in the entry; a multicall inside a multicall, and `iret`, are refused per entry.
//!
//! The multicall is itself the continuation, as on Xen: when an entry's hypercall wants to
//! restart (a long batch, after its bounded share of work), its progress (the arguments the
//! restart rewrote) is written back into that entry in the guest's list, and the multicall
//! restarts from that entry. So the way back to the guest (timers, events, the scheduler) runs
//! between every bounded step, however many entries ask for however much work; a restart is
//! never looped in place. Long lists restart after `BATCH` entries, or once their entries
//! have validated a restart's worth of page-table entries, for the same reason.

use hypercall_abi::multicall::MulticallEntry;
use hypercall_abi::{Errno, nr};

use super::table::resolve;
use super::{Hc, HcResult, copy_in, copy_out, restart};
use crate::arch::entry::GuestRegs;
use crate::mm::mmu;

/// Entries per hypercall entry before restarting.
const BATCH: u64 = 64;

/// What running one entry came to.
enum Outcome {
    /// Finished with this result (a value or a negative errno).
    Done(i64),
    /// Did a bounded part of its work and must be called again with these operation and
    /// arguments.
    Continue { op: u64, args: [u64; 5] },
}

pub fn multicall(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (list, count) = (a[0], a[1]);
    let n = count.min(BATCH);
    let work0 = mmu::work_now();
    for i in 0..n {
        let at = list + i * 64;
        let mut e: MulticallEntry = copy_in(at)?;
        match run_one(hc, &e) {
            Outcome::Done(result) => {
                e.result = result as u64;
                copy_out(at, &e)?;
                // Entries that each validate a whole tree of page tables: restart between them
                // once a restart's worth of validation is done.
                if i + 1 < count && mmu::over_budget(work0) {
                    return restart(hc, nr::MULTICALL, &[at + 64, count - i - 1]);
                }
            }
            Outcome::Continue { op, args } => {
                e.op = op;
                e.args[..5].copy_from_slice(&args);
                copy_out(at, &e)?;
                return restart(hc, nr::MULTICALL, &[at, count - i]);
            }
        }
    }
    if count > n {
        return restart(hc, nr::MULTICALL, &[list + n * 64, count - n]);
    }
    Ok(Some(0))
}

fn run_one(hc: &mut Hc<'_>, e: &MulticallEntry) -> Outcome {
    if e.op == nr::MULTICALL || e.op == nr::IRET {
        return Outcome::Done(Errno::EINVAL.to_ret());
    }
    let desc = match resolve(hc.dom, e.op) {
        Ok(d) => d,
        Err(err) => return Outcome::Done(err.to_ret()),
    };
    // The entry runs on scratch registers holding its arguments: a continuation shows as rip
    // moved back over the `syscall`, with the operation and arguments it rewrote.
    let args = [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]];
    let mut scratch = GuestRegs {
        rdi: args[0],
        rsi: args[1],
        rdx: args[2],
        r10: args[3],
        r8: args[4],
        rip: 2,
        ..GuestRegs::default()
    };
    let mut sub = Hc { vcpu: hc.vcpu, dom: hc.dom, ctx: &mut *hc.ctx, regs: &mut scratch };
    match (desc.handler)(&mut sub, args) {
        Ok(Some(v)) => Outcome::Done(v as i64),
        Ok(None) if scratch.rip == 0 => Outcome::Continue {
            op: scratch.rax,
            args: [scratch.rdi, scratch.rsi, scratch.rdx, scratch.r10, scratch.r8],
        },
        Ok(None) => Outcome::Done(scratch.rax as i64),
        Err(err) => Outcome::Done(err.to_ret()),
    }
}
