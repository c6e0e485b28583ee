//! Reporting what the hypervisor told the kernel at boot.

use hypercall_abi::guest;
use hypercall_abi::start_info::StartInfo;

use crate::println;

/// Prints a start_info summary and the hypervisor version, prefixed with `who`.
pub fn print_start_info(who: &str, si: &StartInfo) {
    let (major, minor) = guest::version().unwrap_or((0, 0));
    let magic = core::str::from_utf8(&si.magic[..14]).unwrap_or("?");
    println!("{who}: hypervisor {major}.{minor}, start_info magic '{magic}'");
    println!(
        "{who}: nr_pages {} ({} MiB), shared_info {:#x}, flags {:#x}{}{}",
        si.nr_pages,
        si.nr_pages / 256,
        si.shared_info.0,
        si.flags,
        if si.is_privileged() { " PRIVILEGED" } else { "" },
        if si.is_initdomain() { " INITDOMAIN" } else { "" }
    );
    println!(
        "{who}: pt_base {:#x} ({} frames), mfn_list {:#x}, store mfn {:#x} evtchn {}, console mfn {:#x} evtchn {}",
        si.pt_base.0,
        si.nr_pt_frames,
        si.mfn_list.0,
        si.store_mfn.0,
        si.store_evtchn.0,
        si.console.domu().mfn.0,
        si.console.domu().evtchn.0
    );
    println!(
        "{who}: module {:#x} ({} bytes), cmdline '{}'",
        si.mod_start,
        si.mod_len,
        crate::cmdline_str(si)
    );
}
