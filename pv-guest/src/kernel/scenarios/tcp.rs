//! TCP over the vif (netfront + `pv_guest::netstack`): `tcp-echo` serves an echo port,
//! `tcp-client` connects to one (another domU through dom0's bridge, or the host through
//! QEMU's gateway) and checks every byte that comes back, `net-hostile` breaks its own
//! transmit ring to show netback closes that vif alone.
//!
//! Parameters: `ip=a.b.c.d` (this guest, /24; default 10.0.2.15), `gw=` (default 10.0.2.2,
//! QEMU's user-network gateway), `vif=<n>` (default 0), `csum_offload=0|1` (default 1: the
//! back end fills TCP checksums); `tcp-echo`: `port=` (default 7), `conns=` (connections to
//! serve before stopping, default 1), `seconds=` (give up after, default 60); `tcp-client`:
//! `server=a.b.c.d:port`, `bytes=` (bulk transfer, default 65536), `rtts=` (round trips,
//! default 20), `seconds=` (default 60); `net-hostile`: `mode=bad-gref|past-ring|storm`,
//! `restarts=`.

use alloc::string::ToString;

use pv_guest::frontends::net::Netfront;
use pv_guest::frontends::net::smol::NetDevice;
use pv_guest::netstack::Stack;
use pv_guest::{cmdline_param, cmdline_value, events, println, time, xenstore};
use smoltcp::wire::Ipv4Address;

fn ipv4(s: &str) -> Option<Ipv4Address> {
    s.parse().ok()
}

fn deadline(line: &str) -> u64 {
    time::now_ns() + cmdline_param(line, "seconds", 60u64) * 1_000_000_000
}

/// Connects the vif and brings the stack up on it.
fn up(line: &str, who: &str) -> Option<Stack<NetDevice>> {
    let dom = xenstore::with(|xs| pv_guest::xenbus::read_u64(xs, "domid")).flatten().unwrap_or(0);
    let devid = cmdline_param(line, "vif", 0u32);
    let nf = match xenstore::with(|xs| Netfront::connect(xs, dom as u16, devid)) {
        Some(Ok(nf)) => nf,
        Some(Err(e)) => {
            println!("RESULT {who}: FAIL vif {devid}: {e}");
            return None;
        }
        None => {
            println!("RESULT {who}: FAIL no XenStore");
            return None;
        }
    };
    let (Some(ip), Some(gw)) = (
        ipv4(cmdline_value(line, "ip").unwrap_or("10.0.2.15")),
        ipv4(cmdline_value(line, "gw").unwrap_or("10.0.2.2")),
    ) else {
        println!("RESULT {who}: FAIL bad ip= or gw=");
        return None;
    };
    let m = nf.mac;
    println!(
        "{who}: vif {devid} up: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, ip {ip}/24, gateway {gw}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let dev = NetDevice { nf, csum_offload: cmdline_param(line, "csum_offload", 1u32) != 0 };
    Some(Stack::new(dev, m, ip, gw))
}

/// `scenario=tcp-echo`.
pub fn echo(line: &str) {
    let Some(mut st) = up(line, "tcp-echo") else { return };
    let conns = cmdline_param(line, "conns", 1u64);
    let (done, bytes) = st.echo_server(cmdline_param(line, "port", 7u16), conns, deadline(line));
    let stats = st.dev.0.nf.stats;
    if done >= conns {
        println!(
            "RESULT tcp-echo: ok {done} connections, {bytes} bytes echoed (vif: {} frames sent, {} received)",
            stats.tx, stats.rx
        );
    } else {
        println!("RESULT tcp-echo: FAIL {done} of {conns} connections in time ({bytes} bytes)");
    }
}

/// `scenario=tcp-client`.
pub fn client(line: &str) {
    let Some(mut st) = up(line, "tcp-client") else { return };
    let Some((addr, port)) = cmdline_value(line, "server")
        .and_then(|s| s.split_once(':'))
        .and_then(|(a, p)| Some((ipv4(a)?, p.parse::<u16>().ok()?)))
    else {
        println!("RESULT tcp-client: FAIL no server=a.b.c.d:port");
        return;
    };
    let total = cmdline_param(line, "bytes", 65536usize);
    let rtts = cmdline_param(line, "rtts", 20usize);
    match st.echo_client(addr, port, total, rtts, deadline(line)) {
        Ok(r) => {
            r.print("domU");
            println!(
                "RESULT tcp-client: ok {total} bytes echoed intact in {} ms ({} KiB/s each way), rtt median {} us over {rtts}",
                r.ms, r.kib_s, r.rtt_us
            );
        }
        Err(e) => println!("RESULT tcp-client: FAIL {e}"),
    }
}

/// `scenario=net-hostile mode=bad-gref|past-ring|storm restarts=<n>`: connects its vif
/// honestly, then breaks the transmit ring by hand (a request naming a grant it never made, or
/// `req_prod` a thousand slots past what exists) and tells the back end, or storms it with
/// events that move nothing, and waits for the back
/// end to close the vif; then starts over as a restarted frontend would, `restarts` times.
/// Reports how many times it was closed, and whether the vif is offered again afterwards.
pub fn hostile(line: &str) {
    use pv_guest::xenbus::{XenbusState, wait_state};

    let mode = cmdline_value(line, "mode").unwrap_or("bad-gref");
    let restarts = cmdline_param(line, "restarts", 0u32);
    let (mut closed, mut offered) = (0, true);
    while offered && closed <= restarts {
        let Some(st) = up(line, "net-hostile") else { return };
        let nf = &st.dev.0.nf;
        attack(nf, mode);
        println!("net-hostile: {mode} sent (attempt {})", closed + 1);
        let be = nf.backend_dir().to_string();
        let s =
            xenstore::with(|xs| wait_state(xs, &be, |s| s >= XenbusState::Closing, 10_000_000_000));
        if s.is_none_or(|s| s < XenbusState::Closing) {
            println!("RESULT net-hostile: FAIL backend state {s:?} after {mode}");
            return;
        }
        closed += 1;
        if closed > restarts {
            break;
        }
        // Start over, as a frontend restarting after its back end closed it, and see whether
        // the back end offers the vif again.
        let fe = nf.dir.clone();
        let again = xenstore::with(|xs| {
            let _ = pv_guest::xenbus::set_state(xs, &fe, XenbusState::Closed);
            let _ = pv_guest::xenbus::set_state(xs, &fe, XenbusState::Initialising);
            wait_state(xs, &be, |s| s == XenbusState::InitWait, 3_000_000_000)
        });
        offered = again == Some(XenbusState::InitWait);
    }
    println!(
        "RESULT net-hostile: backend closed the vif after {mode} {closed} times{}",
        if offered { "" } else { "; not offered again" }
    );
}

/// Breaks `nf`'s transmit ring as `mode` says, and tells the back end.
fn attack(nf: &Netfront, mode: &str) {
    use core::sync::atomic::Ordering::SeqCst;
    use hypercall_abi::io::netif::NetifTxRequest;
    use hypercall_abi::io::ring::{HEADER_SIZE, REQ_PROD};
    use zerocopy::IntoBytes;

    if mode == "storm" {
        // Events and nothing else, for three seconds.
        let end = time::now_ns() + 3_000_000_000;
        while time::now_ns() < end {
            let _ = events::send(nf.port());
        }
        return;
    }
    let page = nf.tx_page();
    let prod = page.u32_at(REQ_PROD).load(SeqCst);
    if mode == "bad-gref" {
        let gref = hypercall_abi::GrantRef(480);
        let req = NetifTxRequest { gref, offset: 0, flags: 0, id: 0, size: 60 };
        page.write(HEADER_SIZE + (prod as usize % 256) * 12, req.as_bytes());
        page.u32_at(REQ_PROD).store(prod + 1, SeqCst);
    } else {
        page.u32_at(REQ_PROD).store(prod.wrapping_add(1000), SeqCst);
    }
    let _ = events::send(nf.port());
}
