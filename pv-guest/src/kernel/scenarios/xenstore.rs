//! `scenario=xenstore [peer=<domid>]`: XenStore from a domU over its ring to dom0's
//! xenstored: its home, permissions (another domain's node is EACCES), a watch, a transaction
//! conflict (EAGAIN), and the quota that keeps a domU from filling dom0's memory.

use hypercall_abi::guest;
use pv_guest::{events, println, time};

/// XenStore from a domU: its home, permissions, a watch, a transaction conflict, quotas.
pub fn xenstore_test(line: &str) {
    use pv_guest::xenstore::{self, Store, XsError};
    let peer: u16 = pv_guest::cmdline_param(line, "peer", 0);
    let r = xenstore::with(|xs| -> Result<(), alloc::string::String> {
        let e = |what: &str, err: XsError| alloc::format!("{what}: {}", err.0);
        let name = xs.read_str(0, "name").map_err(|x| e("read name", x))?;
        println!("xenstore: my name is {name}");
        xs.write(0, "data/hello", b"world").map_err(|x| e("write", x))?;
        if xs.read(0, "data/hello").map_err(|x| e("read back", x))? != b"world" {
            return Err("read back differs".into());
        }
        // Another domain's node: EACCES, not its contents and not ENOENT.
        if peer != 0 {
            match xs.read(0, &alloc::format!("/local/domain/{peer}/name")) {
                Err(XsError(n)) if n == "EACCES" => {
                    println!("RESULT xenstore-perms: PASS reading d{peer}'s name: EACCES")
                }
                other => {
                    println!("RESULT xenstore-perms: FAIL reading d{peer}'s name gave {other:?}")
                }
            }
        }
        // A watch fires once when set, then on a write below it.
        xs.watch("data/w", "tok").map_err(|x| e("watch", x))?;
        xs.write(0, "data/w/x", b"1").map_err(|x| e("write w", x))?;
        let mut seen = alloc::vec::Vec::new();
        let deadline = time::now_ns() + 2_000_000_000;
        while seen.len() < 2 && time::now_ns() < deadline {
            match xs.watch_event() {
                Some(ev) => seen.push(ev),
                None => {
                    let _ = guest::set_timer_op(time::now_ns() + 10_000_000);
                    events::wait();
                }
            }
        }
        println!(
            "RESULT xenstore-watch: {} {:?}",
            if seen.iter().any(|(p, t)| p == "data/w/x" && t == "tok") { "PASS" } else { "FAIL" },
            seen
        );
        // A transaction that read a node someone else changed must not commit.
        xs.write(0, "data/t", b"0").map_err(|x| e("write t", x))?;
        let tx = xs.transaction_start().map_err(|x| e("tx start", x))?;
        let _ = xs.read(tx, "data/t").map_err(|x| e("tx read", x))?;
        xs.write(0, "data/t", b"outside").map_err(|x| e("write outside", x))?;
        xs.write(tx, "data/t", b"inside").map_err(|x| e("tx write", x))?;
        match xs.transaction_end(tx, true) {
            Err(XsError(n)) if n == "EAGAIN" => {
                println!("RESULT xenstore-transaction: PASS conflict gave EAGAIN")
            }
            other => println!("RESULT xenstore-transaction: FAIL commit gave {other:?}"),
        }
        if xs.read(0, "data/t").map_err(|x| e("read t", x))? != b"outside" {
            return Err("the failed transaction's write leaked".into());
        }
        // Quota: a domU cannot fill dom0's memory with nodes.
        let mut refused = None;
        for i in 0..3000 {
            if let Err(err) = xs.write(0, &alloc::format!("data/q/{i}"), b"x") {
                refused = Some((i, err.0));
                break;
            }
        }
        println!("RESULT xenstore-quota: {:?}", refused);
        Ok(())
    });
    match r {
        Some(Ok(())) => println!("RESULT xenstore: PASS"),
        Some(Err(why)) => println!("RESULT xenstore: FAIL {why}"),
        None => println!("RESULT xenstore: FAIL no XenStore connection"),
    }
}
