//! `xen_version`: version, feature bitmaps and build strings. We report Xen 4.17's version
//! number because that is the ABI we follow, so guests enable the paths they would on it.

use hypercall_abi::Errno;
use hypercall_abi::version::{
    XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_COMMANDLINE, XENVER_COMPILE_INFO,
    XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_GUEST_HANDLE, XENVER_PAGESIZE,
    XENVER_PLATFORM_PARAMETERS, XENVER_VERSION, XenFeatureInfo, XenPlatformParameters,
};

use super::{Hc, HcResult, copy_in, copy_out};
use crate::arch::uaccess;
use crate::boot::options;

pub const VERSION_MAJOR: u32 = 4;
pub const VERSION_MINOR: u32 = 17;

use hypercall_abi::version::{
    XENFEAT_DIRECT_MAPPED, XENFEAT_DOM0, XENFEAT_GNTTAB_MAP_AVAIL_BITS, XENFEAT_HIGHMEM_ASSIST,
    XENFEAT_MEMORY_OP_VNODE_SUPPORTED, XENFEAT_MMU_PT_UPDATE_PRESERVE_AD,
    XENFEAT_PAE_PGDIR_ABOVE_4GB,
};

/// Writes `s` NUL-padded into a `len`-byte guest buffer.
fn put_string(va: u64, s: &[u8], len: usize) -> Result<(), Errno> {
    let mut buf = [0u8; 1024];
    let buf = &mut buf[..len.min(1024)];
    let len = buf.len();
    let n = s.len().min(len - 1);
    buf[..n].copy_from_slice(&s[..n]);
    uaccess::copy_to_guest(va, buf)
}

pub fn xen_version(hc: &mut Hc<'_>, a: [u64; 5]) -> HcResult {
    let arg = a[1];
    match a[0] as u32 {
        XENVER_VERSION => Ok(Some(u64::from((VERSION_MAJOR << 16) | VERSION_MINOR))),
        XENVER_EXTRAVERSION => put_string(arg, b".0-xen-core", 16).map(|()| Some(0)),
        XENVER_COMPILE_INFO => {
            let mut info = [0u8; 144];
            info[..5].copy_from_slice(b"rustc");
            info[64..72].copy_from_slice(b"xen-core");
            uaccess::copy_to_guest(arg, &info).map(|()| Some(0))
        }
        XENVER_CAPABILITIES => put_string(arg, b"xen-3.0-x86_64", 1024).map(|()| Some(0)),
        XENVER_CHANGESET => {
            put_string(arg, concat!("xen-core ", env!("CARGO_PKG_VERSION")).as_bytes(), 64)
                .map(|()| Some(0))
        }
        XENVER_PLATFORM_PARAMETERS => {
            let p =
                XenPlatformParameters { virt_start: hypercall_abi::arch::HYPERVISOR_VIRT_START };
            copy_out(arg, &p).map(|()| Some(0))
        }
        XENVER_GET_FEATURES => {
            let mut fi: XenFeatureInfo = copy_in(arg)?;
            fi.submap = match fi.submap_idx {
                0 => {
                    // What Xen 4.17 tells a 64-bit PV guest (checked side by side: the pv-guest
                    // self-test `features` prints it on both). Linux panics without the
                    // preserve-AD and grant-map available-bits features.
                    let mut m = (1 << XENFEAT_PAE_PGDIR_ABOVE_4GB)
                        | (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
                        | (1 << XENFEAT_HIGHMEM_ASSIST)
                        | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS)
                        | (1 << XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
                        | (1 << XENFEAT_DIRECT_MAPPED);
                    if hc.dom.is_privileged {
                        m |= 1 << XENFEAT_DOM0;
                    }
                    m
                }
                _ => 0,
            };
            copy_out(arg, &fi).map(|()| Some(0))
        }
        XENVER_PAGESIZE => Ok(Some(4096)),
        XENVER_GUEST_HANDLE => uaccess::copy_to_guest(arg, &[0u8; 16]).map(|()| Some(0)),
        XENVER_COMMANDLINE => {
            if !hc.dom.is_privileged {
                return Err(Errno::EPERM);
            }
            put_string(arg, options::command_line().as_bytes(), 1024).map(|()| Some(0))
        }
        _ => Err(Errno::ENOSYS),
    }
}
