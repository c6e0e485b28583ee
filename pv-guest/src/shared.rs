//! Memory the hypervisor (or another domain) shares with this kernel: start_info, which the
//! builder wrote and nobody changes after boot, and later the shared_info page and rings.

use hypercall_abi::start_info::StartInfo;

/// The start_info page the hypervisor handed over in rsi.
pub fn start_info_at(va: u64) -> &'static StartInfo {
    assert!(va.is_multiple_of(8) && va != 0, "start_info pointer {va:#x}");
    // SAFETY: the hypervisor's builder wrote a complete start_info at `va` inside the mapped
    // boot region, which stays mapped for the kernel's life and is never written again, so a
    // shared 'static reference is sound; the struct is plain data valid for any bytes.
    unsafe { &*(va as *const StartInfo) }
}
