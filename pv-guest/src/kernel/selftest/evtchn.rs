//! Event-channel misuse from a guest's side: bad port numbers, foreign ports and impossible
//! bindings are errnos and nothing else; a loopback channel works end to end. In dom0 the
//! checks of what a domU may not do to dom0 are skipped.

use alloc::string::String;

use hypercall_abi::{Errno, guest};

use super::run::Test::{self, Check};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[("evtchn", Check(evtchn))];

/// Bad port numbers, foreign ports and impossible bindings are errnos and nothing else.
pub fn evtchn() -> Result<(), String> {
    use hypercall_abi::event_channel::{EvtchnStatusDetail, VIRQ_TIMER};
    use hypercall_abi::{DomId, EvtchnPort};
    let expect = |what: &str, r: Result<u64, Errno>, want: Errno| -> Result<(), String> {
        match r {
            Err(e) if e == want => Ok(()),
            other => Err(alloc::format!("{what}: expected {want:?}, got {other:?}")),
        }
    };
    for bad in [0u32, 1000, 4095, 4096, u32::MAX] {
        expect("send", guest::evtchn_send(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("close", guest::evtchn_close(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("unmask", guest::evtchn_unmask(EvtchnPort(bad)), Errno::EINVAL)?;
        expect("bind_vcpu", guest::evtchn_bind_vcpu(EvtchnPort(bad), 0), Errno::EINVAL)?;
    }
    expect(
        "status of 4096",
        guest::evtchn_status(DomId::SELF_, EvtchnPort(4096)).map(|_| 0),
        Errno::EINVAL,
    )?;
    let closed = guest::evtchn_status(DomId::SELF_, EvtchnPort(1000))
        .map_err(|e| alloc::format!("status: {e:?}"))?;
    if closed.detail() != EvtchnStatusDetail::Closed {
        return Err(alloc::format!("unused port reads {:?}", closed.detail()));
    }
    expect(
        "bind_virq 99",
        guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(99), 0).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    expect(
        "bind_virq vcpu 7",
        guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(VIRQ_TIMER), 7)
            .map(|p| p.0.into()),
        Errno::ENOENT,
    )?;
    expect(
        "VIRQ_TIMER twice",
        guest::evtchn_bind_virq(hypercall_abi::event_channel::Virq(VIRQ_TIMER), 0)
            .map(|p| p.0.into()),
        Errno::EEXIST,
    )?;
    let is_dom0 = pv_guest::start_info().is_privileged();
    if !is_dom0 {
        // Someone else's ports are not ours to look at or to open.
        expect(
            "status of dom0",
            guest::evtchn_status(DomId(0), EvtchnPort(1)).map(|_| 0),
            Errno::EPERM,
        )?;
        let mut op = hypercall_abi::event_channel::EvtchnAllocUnbound {
            dom: DomId(0),
            remote_dom: DomId(0),
            port: EvtchnPort(0),
        };
        #[allow(unsafe_code)]
        // SAFETY: the op matches EVTCHNOP_alloc_unbound.
        let r = unsafe {
            guest::event_channel_op(hypercall_abi::event_channel::EVTCHNOP_ALLOC_UNBOUND, &mut op)
        };
        expect("alloc_unbound in dom0", r, Errno::EPERM)?;
    }
    // Binding to a port nobody offered us.
    expect(
        "bind to dom0 port 1",
        guest::evtchn_bind_interdomain(DomId(0), EvtchnPort(1)).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    expect(
        "bind to a missing domain",
        guest::evtchn_bind_interdomain(DomId(999), EvtchnPort(1)).map(|p| p.0.into()),
        Errno::EINVAL,
    )?;
    // A loopback channel works end to end, and closing it twice is EINVAL.
    let a =
        guest::evtchn_alloc_unbound(DomId::SELF_).map_err(|e| alloc::format!("alloc: {e:?}"))?;
    let b = guest::evtchn_bind_interdomain(DomId::SELF_, a)
        .map_err(|e| alloc::format!("bind: {e:?}"))?;
    pv_guest::events::clear(a);
    guest::evtchn_send(b).map_err(|e| alloc::format!("send: {e:?}"))?;
    if !pv_guest::events::is_pending(a) {
        return Err("loopback send did not reach the other end".into());
    }
    guest::evtchn_close(a).map_err(|e| alloc::format!("close: {e:?}"))?;
    expect("double close", guest::evtchn_close(a), Errno::EINVAL)?;
    guest::evtchn_close(b).map_err(|e| alloc::format!("close b: {e:?}"))?;
    Ok(())
}
