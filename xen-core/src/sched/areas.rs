//! Guest memory a vCPU registered for the hypervisor to keep up to date: its runstate
//! (`VCPUOP_register_runstate_memory_area`) and a second copy of its `vcpu_time_info`
//! (`VCPUOP_register_vcpu_time_memory_area`, which Linux maps into user space for its vDSO).
//! Both are guest virtual addresses in the guest kernel's address space, written when the
//! vCPU is switched in (the runstate) and whenever its time is published (the time copy), as
//! Xen does. A bad address is the guest's problem: the write fails quietly, as on Xen.

use core::sync::atomic::Ordering;

use hypercall_abi::vcpu::XEN_RUNSTATE_UPDATE;
use hypercall_abi::vm_assist::VMASST_TYPE_RUNSTATE_UPDATE_FLAG;
use zerocopy::IntoBytes;

use crate::arch::{paging, uaccess};
use crate::domain::{Domain, VI_TIME, Vcpu, VcpuContext};

/// Runs `f` with the guest kernel's page tables loaded: the areas are kernel addresses, and a
/// 64-bit PV kernel's user page tables do not map the kernel.
fn in_kernel_tables(ctx: &VcpuContext, f: impl FnOnce()) {
    let user = !ctx.kernel_mode && ctx.guest_table.0 != 0;
    if user {
        paging::load_cr3(ctx.guest_table.0 << 12);
    }
    f();
    if user {
        paging::load_cr3(ctx.guest_table_user.0 << 12);
    }
}

/// Copies `v`'s runstate into its registered area, if it has one.
pub fn update_runstate(d: &Domain, v: &Vcpu, ctx: &VcpuContext) {
    let va = v.runstate_area.load(Ordering::Acquire);
    if va == 0 {
        return;
    }
    let mut info = v.runstate.lock().info();
    // With the update flag on, the guest sees the record is being written (entry time's top
    // bit) for as long as it is, and can retry its read.
    let flag = d.vm_assist.load(Ordering::Acquire) & (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG) != 0;
    in_kernel_tables(ctx, || {
        let entry = info.state_entry_time;
        if flag {
            info.state_entry_time = entry | XEN_RUNSTATE_UPDATE;
            let _ = uaccess::copy_to_guest(va + 8, info.state_entry_time.as_bytes());
        }
        let _ = uaccess::copy_to_guest(va, info.as_bytes());
        if flag {
            let _ = uaccess::copy_to_guest(va + 8, entry.as_bytes());
        }
    });
}

/// Copies the `vcpu_time_info` just published in `v`'s vcpu_info into its registered time
/// area, if it has one, with the same odd-while-updating version protocol.
pub fn update_time(v: &Vcpu, ctx: &VcpuContext) {
    let va = v.time_area.load(Ordering::Acquire);
    if va == 0 {
        return;
    }
    let mut words = [0u64; 4];
    for (i, w) in words.iter_mut().enumerate() {
        *w = v.info_word(VI_TIME + i * 8).load(Ordering::Acquire);
    }
    let version = words[0] as u32;
    in_kernel_tables(ctx, || {
        let odd = u64::from(version.wrapping_sub(1) | 1);
        let _ = uaccess::copy_to_guest(va, odd.as_bytes());
        let _ = uaccess::copy_to_guest(va + 8, words[1..].as_bytes());
        let _ = uaccess::copy_to_guest(va, words[0].as_bytes());
    });
}
