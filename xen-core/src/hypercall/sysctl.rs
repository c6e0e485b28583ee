//! `sysctl` for dom0's toolstack: machine-wide facts (physinfo: CPUs, memory, free frames).

use hypercall_abi::Errno;
use hypercall_abi::sysctl::{INTERFACE_VERSION, Physinfo, Sysctl, XEN_SYSCTL_PHYSINFO};

use super::{Hc, HcResult, copy_in, copy_out};
use crate::arch::time;
use crate::mm::machine::with_mm;

pub fn sysctl(_hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let mut op: Sysctl = copy_in(a[0])?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => {
            let (total, free) = with_mm(|mm| (mm.nr_frames(), mm.free_frames()));
            let p = Physinfo {
                threads_per_core: 1,
                cores_per_socket: 1,
                nr_cpus: 1,
                max_cpu_id: 0,
                nr_nodes: 1,
                cpu_khz: (time::tsc_hz() / 1000) as u32,
                total_pages: total,
                free_pages: free,
                max_mfn: total - 1,
                ..Default::default()
            };
            op.set_op(&p);
            copy_out(a[0], &op)?;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
