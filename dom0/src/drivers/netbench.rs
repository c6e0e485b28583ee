//! dom0's own TCP over its virtio NIC (`netbench=<a.b.c.d:port>` on its command line): the
//! same smoltcp stack and echo client as a domU's (`pv_guest::netstack`), driven straight on
//! the NIC, against an echo server on the host (through QEMU's gateway). Its figures are the
//! baseline a domU's TCP through netback and the bridge is measured against (`bench-net`).

use alloc::vec::Vec;
use pv_guest::netstack::{Link, Stack};
use pv_guest::println;

use smoltcp::wire::Ipv4Address;

use super::virtio::Virtio;
use super::virtio::net::Nic;

/// The NIC as the stack's link.
struct NicLink<'a>(&'a mut Nic);

impl Link for NicLink<'_> {
    fn recv_frame(&mut self) -> Option<Vec<u8>> {
        self.0.recv()
    }

    fn can_send(&mut self) -> bool {
        self.0.can_send()
    }

    fn send_frame(&mut self, frame: &[u8]) {
        let _ = self.0.send(frame);
    }

    fn wait_until(&mut self, deadline_ns: u64) {
        self.0.wait(deadline_ns);
    }

    fn burst(&self) -> usize {
        8
    }
}

/// Runs the echo client against `server` (`a.b.c.d:port`) from 10.0.2.15, printing the
/// `NETBENCH dom0_*` figures or why it could not.
pub fn run(v: &mut Virtio, server: &str, bytes: usize) {
    let Some(nic) = v.nics.first_mut() else {
        println!("RESULT netbench: FAIL no NIC");
        return;
    };
    let Some((addr, port)) = server
        .split_once(':')
        .and_then(|(a, p)| Some((a.parse::<Ipv4Address>().ok()?, p.parse::<u16>().ok()?)))
    else {
        println!("RESULT netbench: FAIL netbench=a.b.c.d:port");
        return;
    };
    let mac = nic.mac();
    let ip = Ipv4Address::new(10, 0, 2, 15);
    let mut st = Stack::new(NicLink(nic), mac, ip, Ipv4Address::new(10, 0, 2, 2));
    let deadline = pv_guest::time::now_ns() + 60_000_000_000;
    match st.echo_client(addr, port, bytes, 50, deadline) {
        Ok(r) => {
            r.print("dom0");
            println!(
                "RESULT netbench: ok {bytes} bytes echoed intact in {} ms ({} KiB/s each way), rtt median {} us",
                r.ms, r.kib_s, r.rtt_us
            );
        }
        Err(e) => println!("RESULT netbench: FAIL {e}"),
    }
}
