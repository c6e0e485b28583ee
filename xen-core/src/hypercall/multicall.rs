//! `multicall(entries, count)`: runs each entry's hypercall as if called directly and stores
//! its result in the entry. A call that wants to restart itself (a long batch) is simply run
//! again until it finishes; a multicall inside a multicall, and `iret`, are refused per entry.
//! Long lists restart the multicall itself, so one entry into the hypervisor stays bounded.

use hypercall_abi::multicall::MulticallEntry;
use hypercall_abi::{Errno, nr};

use super::table::resolve;
use super::{Hc, HcResult, copy_in, copy_out, restart};
use crate::arch::entry::GuestRegs;

/// Entries per hypercall entry before restarting.
const BATCH: u64 = 64;

pub fn multicall(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let (list, count) = (a[0], a[1]);
    let n = count.min(BATCH);
    for i in 0..n {
        let at = list + i * 64;
        let mut e: MulticallEntry = copy_in(at)?;
        e.result = run_one(hc, &e) as u64;
        copy_out(at, &e)?;
    }
    if count > n {
        return restart(hc, nr::MULTICALL, &[list + n * 64, count - n]);
    }
    Ok(Some(0))
}

fn run_one(hc: &mut Hc<'_>, e: &MulticallEntry) -> i64 {
    if e.op == nr::MULTICALL || e.op == nr::IRET {
        return Errno::EINVAL.to_ret();
    }
    let desc = match resolve(hc.dom, e.op) {
        Ok(d) => d,
        Err(err) => return err.to_ret(),
    };
    // The entry runs on scratch registers holding its arguments: a continuation shows as rip
    // moved back, with the arguments it changed, and runs again.
    let mut args = [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]];
    let mut scratch = GuestRegs::default();
    loop {
        (scratch.rdi, scratch.rsi, scratch.rdx, scratch.r10, scratch.r8) =
            (args[0], args[1], args[2], args[3], args[4]);
        scratch.rip = 2;
        let mut sub = Hc { vcpu: hc.vcpu, dom: hc.dom, ctx: &mut *hc.ctx, regs: &mut scratch };
        match (desc.handler)(&mut sub, args) {
            Ok(Some(v)) => return v as i64,
            Ok(None) if scratch.rip == 0 => {
                args = [scratch.rdi, scratch.rsi, scratch.rdx, scratch.r10, scratch.r8];
            }
            Ok(None) => return scratch.rax as i64,
            Err(err) => return err.to_ret(),
        }
    }
}
