//! The hypercall table and dispatch. Each hypercall is written once in [`TABLE`]: number,
//! name, handler, and who may call it; dispatch, the unknown-hypercall answer (`-ENOSYS`) and
//! the privilege check (`-EPERM`) all come from it. The handlers live with the concept they
//! serve (`mm::mmu`, `event::event_channel_op`, ...); this is the one place that lists them.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::{Errno, nr};

use super::context::{Hc, HcResult};
use super::{multicall, sysctl, version};
use crate::arch::entry::GuestRegs;
use crate::console::console_io;
use crate::domain::domctl;
use crate::domain::{Domain, Vcpu, VcpuContext};
use crate::event::event_channel_op;
use crate::grant::grant_table_op;
use crate::mm::{memory_op, mmu};
use crate::sched::{platform_op, sched_op, vcpu_op};
use crate::traps::{callbacks, gdt, physdev_op};

type Handler = fn(&mut Hc<'_>, [u64; 5]) -> HcResult;

/// Who may make a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Any,
    /// The privileged domain only (dom0's capability).
    Privileged,
}

/// One hypercall.
pub struct Desc {
    pub nr: u64,
    pub name: &'static str,
    pub handler: Handler,
    pub who: Who,
}

/// The hypercalls this hypervisor implements.
pub const TABLE: &[Desc] = &[
    Desc {
        nr: nr::SET_TRAP_TABLE,
        name: "set_trap_table",
        handler: callbacks::set_trap_table,
        who: Who::Any,
    },
    Desc { nr: nr::MMU_UPDATE, name: "mmu_update", handler: mmu::mmu_update, who: Who::Any },
    Desc { nr: nr::SET_GDT, name: "set_gdt", handler: gdt::set_gdt, who: Who::Any },
    Desc {
        nr: nr::UPDATE_DESCRIPTOR,
        name: "update_descriptor",
        handler: gdt::update_descriptor,
        who: Who::Any,
    },
    Desc {
        nr: nr::STACK_SWITCH,
        name: "stack_switch",
        handler: callbacks::stack_switch,
        who: Who::Any,
    },
    Desc {
        nr: nr::SET_CALLBACKS,
        name: "set_callbacks",
        handler: callbacks::set_callbacks,
        who: Who::Any,
    },
    Desc {
        nr: nr::FPU_TASKSWITCH,
        name: "fpu_taskswitch",
        handler: callbacks::fpu_taskswitch,
        who: Who::Any,
    },
    Desc {
        nr: nr::UPDATE_VA_MAPPING,
        name: "update_va_mapping",
        handler: mmu::update_va_mapping,
        who: Who::Any,
    },
    Desc { nr: nr::XEN_VERSION, name: "xen_version", handler: version::xen_version, who: Who::Any },
    Desc { nr: nr::CONSOLE_IO, name: "console_io", handler: console_io::console_io, who: Who::Any },
    Desc { nr: nr::VM_ASSIST, name: "vm_assist", handler: callbacks::vm_assist, who: Who::Any },
    Desc {
        nr: nr::SET_DEBUGREG,
        name: "set_debugreg",
        handler: callbacks::set_debugreg,
        who: Who::Any,
    },
    Desc {
        nr: nr::GET_DEBUGREG,
        name: "get_debugreg",
        handler: callbacks::get_debugreg,
        who: Who::Any,
    },
    Desc { nr: nr::IRET, name: "iret", handler: callbacks::iret, who: Who::Any },
    Desc {
        nr: nr::SET_SEGMENT_BASE,
        name: "set_segment_base",
        handler: callbacks::set_segment_base,
        who: Who::Any,
    },
    Desc { nr: nr::MMUEXT_OP, name: "mmuext_op", handler: mmu::mmuext_op, who: Who::Any },
    Desc { nr: nr::SCHED_OP, name: "sched_op", handler: sched_op::sched_op, who: Who::Any },
    Desc {
        nr: nr::CALLBACK_OP,
        name: "callback_op",
        handler: callbacks::callback_op,
        who: Who::Any,
    },
    Desc {
        nr: nr::SET_TIMER_OP,
        name: "set_timer_op",
        handler: vcpu_op::set_timer_op,
        who: Who::Any,
    },
    Desc { nr: nr::VCPU_OP, name: "vcpu_op", handler: vcpu_op::vcpu_op, who: Who::Any },
    Desc {
        nr: nr::EVENT_CHANNEL_OP,
        name: "event_channel_op",
        handler: event_channel_op::event_channel_op,
        who: Who::Any,
    },
    Desc {
        nr: nr::GRANT_TABLE_OP,
        name: "grant_table_op",
        handler: grant_table_op::grant_table_op,
        who: Who::Any,
    },
    // Who::Any: the privilege check comes after the envelope's, in Xen's order (platform_op.rs).
    Desc {
        nr: nr::PLATFORM_OP,
        name: "platform_op",
        handler: platform_op::platform_op,
        who: Who::Any,
    },
    Desc { nr: nr::DOMCTL, name: "domctl", handler: domctl::domctl, who: Who::Privileged },
    Desc { nr: nr::MEMORY_OP, name: "memory_op", handler: memory_op::memory_op, who: Who::Any },
    Desc { nr: nr::SYSCTL, name: "sysctl", handler: sysctl::sysctl, who: Who::Privileged },
    Desc { nr: nr::MULTICALL, name: "multicall", handler: multicall::multicall, who: Who::Any },
    Desc { nr: nr::PHYSDEV_OP, name: "physdev_op", handler: physdev_op::physdev_op, who: Who::Any },
    Desc {
        nr: nr::UPDATE_VA_MAPPING_OTHERDOMAIN,
        name: "update_va_mapping_otherdomain",
        handler: mmu::update_va_mapping_otherdomain,
        who: Who::Privileged,
    },
];

/// Hypercall numbers go up to 63; INDEX maps each to its TABLE entry (0xFF: none), built at
/// compile time so dispatch is one array load.
const INDEX_SIZE: usize = 64;
static INDEX: [u8; INDEX_SIZE] = build_index();

const fn build_index() -> [u8; INDEX_SIZE] {
    let mut index = [0xFF; INDEX_SIZE];
    let mut i = 0;
    while i < TABLE.len() {
        let nr = TABLE[i].nr as usize;
        assert!(nr < INDEX_SIZE && index[nr] == 0xFF, "hypercall numbers fit and are unique");
        index[nr] = i as u8;
        i += 1;
    }
    index
}

/// Looks a hypercall up by number.
pub fn lookup(number: u64) -> Option<&'static Desc> {
    let i = *INDEX.get(usize::try_from(number).ok()?)?;
    TABLE.get(usize::from(i))
}

/// The table entry for hypercall `number` if `dom` may make it: `-ENOSYS` for an unknown
/// number, `-EPERM` for a privileged one from an unprivileged domain.
pub fn resolve(dom: &Domain, number: u64) -> Result<&'static Desc, Errno> {
    let d = lookup(number).ok_or(Errno::ENOSYS)?;
    if d.who == Who::Privileged && !dom.is_privileged {
        return Err(Errno::EPERM);
    }
    Ok(d)
}

/// How many more hypercalls to log (`hctrace=<n>` on the command line; 0: none).
pub static TRACE: AtomicU64 = AtomicU64::new(0);

/// Whether to log this hypercall: takes one from [`TRACE`] while any are left.
fn traced() -> bool {
    TRACE.load(Ordering::Relaxed) != 0
        && TRACE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
}

/// Runs the hypercall in `regs` for the current vCPU and writes its result.
pub fn dispatch(vcpu: &Arc<Vcpu>, dom: &Arc<Domain>, ctx: &mut VcpuContext, regs: &mut GuestRegs) {
    let number = regs.rax;
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8];
    let trace = traced().then_some(regs.rip);
    let result = match resolve(dom, number) {
        Ok(d) => {
            let mut hc = Hc { vcpu, dom, ctx, regs };
            (d.handler)(&mut hc, args)
        }
        Err(e) => {
            match lookup(number) {
                None => crate::guest_log!(**dom, "unknown hypercall {number}"),
                Some(d) => crate::guest_log!(**dom, "{} is for the privileged domain only", d.name),
            }
            Err(e)
        }
    };
    if let Some(rip) = trace {
        let name = lookup(number).map_or("?", |d| d.name);
        let shown = match result {
            Ok(Some(v)) => alloc::format!("{v:#x}"),
            Ok(None) => alloc::string::String::from("(registers set by the call)"),
            Err(e) => alloc::format!("-{} ({e})", e.0),
        };
        log::info!(
            "hctrace d{} rip {rip:#x}: {name}({number}) {:#x} {:#x} {:#x} {:#x} {:#x} -> {shown}",
            dom.id.0,
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
        );
    }
    match result {
        Ok(Some(v)) => regs.rax = v,
        Ok(None) => {}
        Err(e) => regs.rax = e.to_ret() as u64,
    }
}
