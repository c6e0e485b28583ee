//! `scenario=limits`: one domU drives every per-domain limit on hypervisor memory MEMORY.md
//! lists, one after the other, and prints `RESULT limits: <what> <how many> then <status>`
//! for each. Two such domains run at once in the system test beside a victim: each must reach
//! the same numbers (a limit per domain, not a shared pool one of them empties first).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::grant_table::{
    GNTMAP_HOST_MAP, GNTST_OKAY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_SETUP_TABLE, GnttabMapGrantRef,
    GnttabSetupTable, gntst_name,
};
use hypercall_abi::sched::{SCHEDOP_POLL, SchedPoll};
use hypercall_abi::{DomId, EvtchnPort, GuestHandle, Mfn, guest, nr};

use pv_guest::memory::pages;
use pv_guest::{grant, println, time};

/// Maps this domain's own grant at one address until the hypervisor refuses (or `want`
/// maps are made): how many were made, and the status that stopped them.
pub(super) fn map_own_grant_until_refused(want: u32) -> Result<(u32, Option<String>), String> {
    let me = guest::own_domid().map_err(|e| format!("no domid: {e:?}"))?;
    let (Some(page), Some(gref), Some(va)) =
        (pages::alloc_page(), grant::alloc_ref(), pages::alloc_slot())
    else {
        return Err("no page, ref or slot".into());
    };
    grant::grant_access(gref, me, page.mfn(), false);
    let op = GnttabMapGrantRef {
        host_addr: va,
        flags: GNTMAP_HOST_MAP,
        gref,
        dom: me,
        ..Default::default()
    };
    let mut mapped = 0u32;
    while mapped < want {
        let n = ((want - mapped) as usize).min(64);
        let mut ops = [op; 64];
        #[allow(unsafe_code)]
        // SAFETY: map ops of this domain's own grant at a slot of its own, which nothing else
        // uses; the hypervisor replaces its PTE with each map.
        let r = unsafe { guest::grant_table_op(GNTTABOP_MAP_GRANT_REF, &mut ops[..n]) };
        if let Err(e) = r {
            return Ok((mapped, Some(format!("{e:?}"))));
        }
        for o in &ops[..n] {
            if o.status != GNTST_OKAY {
                let s = gntst_name(o.status).unwrap_or("?");
                return Ok((mapped, Some(format!("GNTST_{s}"))));
            }
            mapped += 1;
        }
    }
    Ok((mapped, None))
}

fn setup_table(frames: u32) -> String {
    let mut list = [Mfn(0); 65];
    let mut op = [GnttabSetupTable {
        dom: DomId::SELF_,
        nr_frames: frames,
        frame_list: GuestHandle::from_mut_slice(&mut list[..frames.min(65) as usize]),
        ..Default::default()
    }];
    #[allow(unsafe_code)]
    // SAFETY: the op matches GNTTABOP_setup_table; `list` holds the frames it writes.
    let r = unsafe { guest::grant_table_op(GNTTABOP_SETUP_TABLE, &mut op) };
    match r {
        Err(e) => format!("{e:?}"),
        Ok(_) if op[0].status == GNTST_OKAY => "ok".into(),
        Ok(_) => format!("GNTST_{}", gntst_name(op[0].status).unwrap_or("?")),
    }
}

fn poll(ports: &[EvtchnPort]) -> String {
    let p = SchedPoll {
        ports: GuestHandle::from_slice(ports),
        nr_ports: ports.len() as u32,
        _pad: 0,
        timeout: time::now_ns() + 1_000_000,
    };
    #[allow(unsafe_code)]
    // SAFETY: the poll argument names `ports`, live for the call; a timeout is set.
    let r =
        unsafe { guest::raw::hypercall2(nr::SCHED_OP, SCHEDOP_POLL.into(), &p as *const _ as u64) };
    match hypercall_abi::errno::ret_to_result(r) {
        Ok(_) => "ok".into(),
        Err(e) => errno(e),
    }
}

fn errno(e: hypercall_abi::Errno) -> String {
    e.name().map_or_else(|| format!("{e:?}"), String::from)
}

/// Drives each limit in turn.
pub fn run(_line: &str) {
    // Grant-table frames: 64 per domain, the 65th refused.
    println!("RESULT limits: grant-frames 64 {} then 65 {}", setup_table(64), setup_table(65));
    // Grant mappings held (maptrack handles).
    match map_own_grant_until_refused(100_000) {
        Ok((n, why)) => {
            println!("RESULT limits: grant-maps {n} then {}", why.as_deref().unwrap_or("none"))
        }
        Err(e) => println!("RESULT limits: grant-maps FAIL {e}"),
    }
    // Event-channel ports: allocate until refused; the domain already holds a few.
    let mut ports = Vec::new();
    let why = loop {
        match guest::evtchn_alloc_unbound(DomId(0)) {
            Ok(p) => ports.push(p),
            Err(e) => break errno(e),
        }
        if ports.len() > 100_000 {
            break "none".into();
        }
    };
    let top = ports.iter().map(|p| p.0).max().unwrap_or(0);
    println!("RESULT limits: ports {} (highest {top}) then {why}", ports.len());
    // Ports one SCHEDOP_poll waits on: 128, not 129.
    let set = &ports[..ports.len().min(129)];
    if set.len() == 129 {
        println!("RESULT limits: poll 128 {} then 129 {}", poll(&set[..128]), poll(set));
    }
    // Close them again: the domain is still working below its limits.
    let closed = ports.iter().filter(|&&p| guest::evtchn_close(p).is_ok()).count();
    let again = guest::evtchn_alloc_unbound(DomId(0)).is_ok();
    println!("RESULT limits: closed {closed}, a new port after: {again}");
    // The console: a burst of lines in one call; what passes is the burst the limit allows.
    let mut burst = String::new();
    for i in 0..300 {
        burst.push_str(&format!("limits: console line {i}\n"));
    }
    let _ = guest::console_io_write(burst.as_bytes());
    time::sleep_ns(1_100_000_000);
    let _ = guest::console_io_write(b"limits: console after a pause\n");
    println!("RESULT limits: done");
}
