//! Guests' network through dom0's netback and bridge: domUs built from configurations with a
//! `vif` each run smoltcp over their netfront; a TCP exchange with a real client on the host
//! through QEMU's user network and its port forward; domU <-> domU TCP through the bridge; a
//! hostile frontend (bad grant, indices past the ring, an event storm) disconnected alone while the others' traffic carries on (and, starting
//! over into the same violation, closed for good after three); Linux's own xen-netfront.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::*;

fn cfg(name: &str, extra: &str, vif: &str) -> (String, Vec<u8>) {
    (
        format!("{name}.cfg"),
        format!(
            "name = \"{name}\"\nkernel = \"pv-guest\"\nmemory = 24\nextra = \"{extra}\"\nvif = [ '{vif}' ]\n"
        )
        .into_bytes(),
    )
}

fn boot(name: &str, guests: &[(String, Vec<u8>)], create: &str) -> Boot {
    let mut files: Vec<(&str, Vec<u8>)> = vec![pv_guest_file()];
    files.extend(guests.iter().map(|(n, b)| (n.as_str(), b.clone())));
    let archive = guest_archive(name, &files);
    Boot::new(name, "dom0", &format!("create={create}")).module(archive, "").timeout_secs(240)
}

/// A host port for a forward: one per test, apart from other test files' ports.
fn port(n: u16) -> u16 {
    20000 + (std::process::id() % 1000) as u16 * 10 + n
}

/// Connects to the forward until the guest's echo server answers, then sends `msg` and
/// returns what came back (None if nothing answered by `deadline`).
fn host_echo(port: u16, msg: &[u8], deadline: Instant) -> Option<Vec<u8>> {
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        if s.write_all(msg).is_err() {
            continue;
        }
        let mut got = vec![0u8; msg.len()];
        let mut at = 0;
        while at < got.len() {
            match s.read(&mut got[at..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => at += n,
            }
        }
        // Slirp accepts on the host before the guest does: a guest not listening yet shows
        // as a connection closed with nothing read. Try again.
        if at == got.len() {
            return Some(got);
        }
    }
    None
}

#[test]
fn host_client_talks_tcp_to_a_domu_echo_server_through_the_port_forward() {
    let _g = shared();
    let p = port(1);
    let guests = [cfg(
        "echo",
        "scenario=tcp-echo ip=10.0.2.15 port=7 conns=1 seconds=120",
        "mac=00:16:3e:00:00:15",
    )];
    let boot = boot("net-host-echo", &guests, "echo").nic(Some((p, 7)));
    let msg: Vec<u8> = (0..20000u32).map(|i| (i % 253) as u8).collect();
    let client = {
        let msg = msg.clone();
        std::thread::spawn(move || host_echo(p, &msg, Instant::now() + Duration::from_secs(150)))
    };
    let run = boot.run();
    let got = client.join().unwrap();
    run.expect("dom0: vif1.0 (echo): mac 00:16:3e:00:00:15, on xenbr0");
    run.expect("dom0: vif1.0: connected");
    run.expect("[echo] tcp-echo: vif 0 up: mac 00:16:3e:00:00:15");
    assert_eq!(got.as_deref(), Some(&msg[..]), "the host's bytes came back through the guest");
    run.expect("[echo] RESULT tcp-echo: ok 1 connections, 20000 bytes echoed");
    run.expect_status(EXIT_POWEROFF);
    run.expect_not("FAIL");
}

#[test]
fn domus_talk_tcp_through_dom0s_bridge() {
    let _g = shared();
    let guests = [
        cfg("server", "scenario=tcp-echo ip=10.0.2.15 port=7 conns=1", ""),
        cfg(
            "client",
            "scenario=tcp-client ip=10.0.2.16 server=10.0.2.15:7 bytes=200000 rtts=20",
            "mac=00:16:3e:00:00:16",
        ),
    ];
    let run = boot("net-domu-domu", &guests, "server+client").nic(None).run();
    run.expect_status(EXIT_POWEROFF);
    run.expect("dom0: vif1.0: connected");
    run.expect("dom0: vif2.0: connected");
    run.expect("[client] tcp-client: connected to 10.0.2.15:7");
    run.expect("[client] RESULT tcp-client: ok 200000 bytes echoed intact");
    // The bulk transfer and the 20 round trips of 32 bytes.
    run.expect("[server] RESULT tcp-echo: ok 1 connections, 200640 bytes echoed");
    run.expect_not("FAIL");
    run.expect_not("disconnected");
}

#[test]
fn hostile_frontends_lose_their_vif_alone_and_the_others_talk_on() {
    let _g = shared();
    let guests = [
        cfg("badgref", "scenario=net-hostile ip=10.0.2.30 mode=bad-gref", ""),
        cfg("pastring", "scenario=net-hostile ip=10.0.2.31 mode=past-ring restarts=4", ""),
        cfg("server", "scenario=tcp-echo ip=10.0.2.15 port=7 conns=1", ""),
        cfg("client", "scenario=tcp-client ip=10.0.2.16 server=10.0.2.15:7 bytes=100000", ""),
        cfg("stormer", "scenario=net-hostile ip=10.0.2.32 mode=storm", ""),
    ];
    let run =
        boot("net-hostile", &guests, "badgref+pastring+server+client+stormer").nic(None).run();
    run.expect_status(EXIT_POWEROFF);
    // One line each, naming what the frontend did.
    assert_eq!(run.matching("dom0: vif1.0: disconnected").len(), 1);
    run.expect("dom0: vif1.0: disconnected: grant ref 480 refused");
    run.expect("dom0: vif2.0: disconnected: ring indices out of range");
    run.expect("[badgref] RESULT net-hostile: backend closed the vif after bad-gref 1 times");
    // One that starts over into the same violation is closed three times, then for good: it
    // cannot make dom0 print without end.
    assert_eq!(run.matching("dom0: vif2.0: disconnected").len(), 3, "{}", run.text());
    run.expect("dom0: vif2.0: disconnected: ring indices out of range (");
    run.expect("closed for good after 3 violations");
    run.expect(
        "[pastring] RESULT net-hostile: backend closed the vif after past-ring 3 times; not offered again",
    );
    // The honest pair's vifs stay up and carry their exchange.
    run.expect("[client] RESULT tcp-client: ok 100000 bytes echoed intact");
    run.expect("[server] RESULT tcp-echo: ok 1 connections");
    // Events that move nothing, again and again, close that vif too.
    assert_eq!(run.matching("dom0: vif5.0: disconnected").len(), 1);
    run.expect("dom0: vif5.0: disconnected: event storm (");
    run.expect("[stormer] RESULT net-hostile: backend closed the vif after storm 1 times");
    assert_eq!(run.matching("disconnected").len(), 5, "only the hostile vifs");
    // Nothing of the hostile guests stays mapped: their memory all comes back.
    run.expect("domain 1: all frames returned");
    run.expect("domain 2: all frames returned");
    run.expect("domain 5: all frames returned");
    run.expect_not("RESULT tcp-client: FAIL");
}

/// Linux's own xen-netfront (Debian's kernel, the module from its initramfs) against netback:
/// Linux takes 10.0.2.15 and runs an echo server (busybox `nc -ll -e cat`); the host talks to
/// it through QEMU's port forward, and a pv-guest's TCP client through dom0's bridge, checking
/// every byte of 100 kB. This is the test that netback speaks Xen's netif, not only our
/// frontend's dialect.
#[test]
fn linux_netfront_echoes_tcp_to_the_host_and_to_a_domu() {
    let Some(g) = tests::linux::linux_guest_or_skip() else { return };
    let _g = shared();
    let p = port(2);
    let linux_cfg = "name = \"linux\"\nkernel = \"boot/vmlinuz\"\nramdisk = \"boot/initramfs.cpio\"\n\
                     memory = 256\nextra = \"console=hvc0\"\nvif = [ 'mac=00:16:3e:00:00:15' ]\n";
    let guests = [
        ("boot/vmlinuz".to_string(), std::fs::read(&g.kernel).unwrap()),
        ("boot/initramfs.cpio".to_string(), std::fs::read(&g.initramfs).unwrap()),
        ("linux.cfg".to_string(), linux_cfg.as_bytes().to_vec()),
        cfg(
            "client",
            "scenario=tcp-client ip=10.0.2.16 server=10.0.2.15:7 bytes=100000 rtts=10 seconds=400",
            "",
        ),
    ];
    let setup = "ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && \
                 ip route add default via 10.0.2.2 && (nc -ll -p 7 -e cat &) && \
                 echo NET-UP-$((6*7))\n";
    let boot = boot("net-linux", &guests, "linux+client")
        .hv_args("loglvl=info smap=0")
        .memory_mib(1024)
        .timeout_secs(500)
        .nic(Some((p, 7)))
        .type_after(tests::linux::INIT_SHELL, "route 1\n")
        .type_after("console input now goes to d1", setup)
        .type_after("[client] RESULT tcp-client", "sleep 15; echo NET-DONE-$((6*7))\n")
        .until("NET-DONE-42");
    let msg: Vec<u8> = (0..30000u32).map(|i| (i % 251) as u8).collect();
    let client = {
        let msg = msg.clone();
        std::thread::spawn(move || host_echo(p, &msg, Instant::now() + Duration::from_secs(450)))
    };
    let run = boot.run();
    let got = client.join().unwrap();
    run.expect("LINUX-INIT: loaded xen-netfront.ko");
    run.expect("dom0: vif1.0: connected (mac 00:16:3e:00:00:15");
    run.expect("NET-UP-42");
    run.expect("[client] RESULT tcp-client: ok 100000 bytes echoed intact");
    assert_eq!(got.as_deref(), Some(&msg[..]), "the host's bytes came back through Linux");
    assert!(run.matching("disconnected").is_empty(), "{}", run.text());
}
