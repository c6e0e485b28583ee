//! `sysctl` for dom0's toolstack: machine-wide facts (physinfo: CPUs, memory, free frames), and
//! the domUs the hypervisor's command line names with the boot modules they come from
//! (xen-core's own operations: dom0's toolstack builds those domains, `domain::bootdomus`).

use hypercall_abi::Errno;
use hypercall_abi::sysctl::{
    BOOT_MODULE_CHUNK, BOOT_MODULE_NONE, BootDomu, BootModule, INTERFACE_VERSION, Physinfo,
    Readconsole, Sysctl, XEN_SYSCTL_BOOT_DOMU, XEN_SYSCTL_BOOT_MODULE, XEN_SYSCTL_PHYSINFO,
    XEN_SYSCTL_READCONSOLE,
};

use super::{Hc, HcResult, copy_in, copy_out};
use crate::arch::{time, uaccess};
use crate::domain::bootdomus;
use crate::mm::machine::{self, with_mm};

pub fn sysctl(_hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let mut op: Sysctl = copy_in(a[0])?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => {
            let (total, free, dirty) =
                with_mm(|mm| (mm.nr_frames(), mm.free_frames(), mm.dirty_frames()));
            let p = Physinfo {
                threads_per_core: 1,
                cores_per_socket: 1,
                nr_cpus: 1,
                max_cpu_id: 0,
                nr_nodes: 1,
                cpu_khz: (time::tsc_hz() / 1000) as u32,
                total_pages: total,
                free_pages: free,
                // Of the free frames, those the idle loop has not zeroed yet (Xen 4.17 says 0
                // here; the field's meaning is this).
                scrub_pages: dirty,
                max_mfn: total - 1,
                ..Default::default()
            };
            op.set_op(&p);
            copy_out(a[0], &op)?;
            Ok(Some(0))
        }
        XEN_SYSCTL_READCONSOLE => {
            let mut r: Readconsole = op.op();
            // Copied out through a bounded bounce buffer, a chunk at a time, so the ring's
            // lock is never held across a guest copy.
            let mut chunk = [0u8; 512];
            let want = r.count as usize;
            let mut at = (r.incremental != 0).then_some(r.index);
            let (mut done, mut next) = (0usize, r.index);
            loop {
                let len = chunk.len().min(want - done);
                let (n, after) =
                    crate::console::logging::with_ring(|ring| ring.read(at, &mut chunk[..len]));
                if at.is_none() {
                    next = after.wrapping_sub(n as u32);
                }
                if n == 0 {
                    break;
                }
                uaccess::copy_to_guest(r.buffer + done as u64, &chunk[..n])?;
                done += n;
                next = after;
                at = Some(after);
                if done == want {
                    break;
                }
            }
            if r.clear != 0 {
                crate::console::logging::with_ring(|ring| ring.clear());
            }
            r.count = done as u32;
            r.index = next;
            op.set_op(&r);
            copy_out(a[0], &op)?;
            Ok(Some(0))
        }
        XEN_SYSCTL_BOOT_DOMU => {
            let mut b: BootDomu = op.op();
            let d = bootdomus::domu(b.index as usize).ok_or(Errno::ESRCH)?;
            b.kernel_module = d.kernel_module as u32;
            b.ramdisk_module = d.ramdisk_module.map_or(BOOT_MODULE_NONE, |m| m as u32);
            b.weight = d.weight;
            b.cap = d.cap;
            b.mem_bytes = d.mem_bytes;
            b.name = [0; 64];
            let n = d.name.len().min(63);
            b.name[..n].copy_from_slice(&d.name.as_bytes()[..n]);
            op.set_op(&b);
            copy_out(a[0], &op)?;
            Ok(Some(0))
        }
        XEN_SYSCTL_BOOT_MODULE => {
            let mut b: BootModule = op.op();
            let m = bootdomus::module(b.index as usize).ok_or(Errno::ESRCH)?;
            let bytes = machine::module_bytes(m.start, m.end);
            b.size = bytes.len() as u64;
            let from = b.offset.min(b.size) as usize;
            let n = b.len.min(BOOT_MODULE_CHUNK).min(b.size - from as u64) as usize;
            b.len = 0;
            if b.buffer != 0 && n > 0 {
                uaccess::copy_to_guest(b.buffer, &bytes[from..from + n])?;
                b.len = n as u64;
            }
            let args = m.args.as_bytes();
            if b.cmdline != 0 && args.len() as u64 <= b.cmdline_len {
                uaccess::copy_to_guest(b.cmdline, args)?;
            }
            b.cmdline_len = args.len() as u64;
            op.set_op(&b);
            copy_out(a[0], &op)?;
            Ok(Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
