//! The domUs the hypervisor's command line names (`domu=`, `domu_ramdisk=`), recorded at boot
//! for dom0's toolstack, which builds them through domctl with the same builder as every other
//! domU (`sysctl` boot_domu and boot_module hand it the specs and the modules' bytes). The
//! modules they name stay where the boot loader put them for the machine's life: a domain
//! that reboots is built again from them.

use alloc::string::String;
use alloc::vec::Vec;

/// A domU to build at boot.
#[derive(Clone, Debug)]
pub struct BootDomu {
    pub name: String,
    pub kernel_module: usize,
    pub ramdisk_module: Option<usize>,
    pub mem_bytes: u64,
    pub weight: u32,
    pub cap: u32,
}

/// A boot module kept for the toolstack: its bytes (physical range) and its arguments.
#[derive(Clone, Debug)]
pub struct KeptModule {
    pub index: usize,
    pub start: u64,
    pub end: u64,
    pub args: String,
}

struct Boot {
    domus: Vec<BootDomu>,
    modules: Vec<KeptModule>,
}

static BOOT: spin::Once<Boot> = spin::Once::new();

/// Records the boot domUs and the modules they name (once, at boot).
pub fn record(domus: Vec<BootDomu>, modules: Vec<KeptModule>) {
    BOOT.call_once(|| Boot { domus, modules });
}

/// The `i`-th boot domU.
pub fn domu(i: usize) -> Option<&'static BootDomu> {
    BOOT.get()?.domus.get(i)
}

/// Boot module `index`, if a boot domU names it.
pub fn module(index: usize) -> Option<&'static KeptModule> {
    BOOT.get()?.modules.iter().find(|m| m.index == index)
}
