//! Quotas, backpressure, framing errors, and hostile or random traffic.

use super::*;

fn small_quotas() -> Quotas {
    Quotas {
        max_nodes: 40,
        max_watches: 8,
        max_transactions: 3,
        max_transaction_nodes: 64,
        max_node_size: 256,
        max_memory: 64 * 1024,
        ..Quotas::default()
    }
}

#[test]
fn node_quota_and_size_quota() {
    let mut h = Harness::with(small_quotas());
    let g = h.domu(3);
    let other = h.domu(4);
    let owned_at_start = h.xs.tree.usage(DomId(3)).nodes;
    let mut created = 0;
    let last = loop {
        match h.write(g, &format!("data/n{created}"), "v") {
            Ok(_) => created += 1,
            Err(e) => break e,
        }
        assert!(created <= 40);
    };
    assert_eq!(last, "ENOSPC");
    assert_eq!(owned_at_start + created, 40);
    // Freeing works; so does dom0, in the guest's area too, and the other guest.
    h.rm(g, "data/n0").unwrap();
    h.write(g, "data/again", "v").unwrap();
    h.write(DOM0, "/local/domain/3/data/by-dom0", "v").unwrap();
    h.write(other, "data/fine", "v").unwrap();
    // Node size.
    assert_eq!(h.write(other, "data/big", &"x".repeat(300)), err("ENOSPC"));
    assert_eq!(h.write(other, "data/fine", &"x".repeat(200)), ok());
    assert_eq!(h.write(DOM0, "/big", &"x".repeat(4000)), ok());
    h.check();
}

#[test]
fn watch_and_transaction_quotas() {
    let mut h = Harness::with(small_quotas());
    let g = h.domu(3);
    for i in 0..8 {
        h.watch(g, &format!("data/w{i}"), "t").unwrap();
    }
    assert_eq!(h.watch(g, "data/w8", "t"), err("ENOSPC"));
    for _ in 0..3 {
        h.tx_start(g);
    }
    assert_eq!(h.call(g, XsType::TransactionStart, 0, b"\0"), err("ENOSPC"));
    // dom0 is exempt.
    for i in 0..20 {
        h.watch(DOM0, &format!("/w{i}"), "t").unwrap();
    }
    // A transaction cannot create more nodes than the domain may own, nor touch more than
    // the transaction-nodes quota.
    let mut h = Harness::with(small_quotas());
    let g = h.domu(3);
    let tx = h.tx_start(g);
    let mut i = 0;
    let e = loop {
        if let Err(e) = h.write_tx(g, tx, &format!("data/t{i}"), "v") {
            break e;
        }
        i += 1;
    };
    assert_eq!(e, "ENOSPC");
    assert_eq!(h.tx_end(g, tx, true), ok());
    assert_eq!(h.xs.tree.usage(DomId(3)).nodes, 40);
}

#[test]
fn unread_replies_stall_the_ring() {
    let mut h = Harness::with(small_quotas());
    let g = h.domu(3);
    let one = wire::request(XsType::Read, 1, 0, b"name\0");
    let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * 30).collect();
    let taken = h.xs.feed(g, &stream).unwrap();
    assert_eq!(taken, one.len() * Quotas::default().max_outstanding);
    assert_eq!(h.xs.input_wanted(g), 0);
    // Draining one reply lets exactly one more request in.
    assert!(h.xs.pop_output(g).is_some());
    assert_eq!(h.xs.input_wanted(g), wire::HEADER_LEN);
    assert_eq!(h.xs.feed(g, &stream[taken..]).unwrap(), one.len());
}

#[test]
fn output_can_be_drained_in_pieces() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.send(g, XsType::Read, 0, b"name\0");
    let whole = h.xs.output(g).to_vec();
    let mut got = Vec::new();
    while !h.xs.output(g).is_empty() {
        let piece: Vec<u8> = h.xs.output(g).iter().take(5).copied().collect();
        h.xs.consume_output(g, piece.len());
        got.extend(piece);
    }
    assert_eq!(got, whole);
    assert_eq!(wire::decode(&got).unwrap().1, b"guest3");
    assert_eq!(h.xs.connections_with_output().count(), 0);
}

#[test]
fn framing_errors_and_unknown_types() {
    let mut h = Harness::new();
    let g = h.domu(3);
    assert_eq!(h.call(g, XsType::WatchEvent, 0, b"x\0y\0"), err("ENOSYS"));
    assert_eq!(h.call(g, XsType::DirectoryPart, 0, b"/\x000\0"), err("ENOSYS"));
    let unknown = wire::encode(0xffff, 42, 0, b"");
    assert_eq!(h.xs.feed(g, &unknown), Ok(16));
    let replies = h.drain(g);
    assert_eq!(replies[0].0.kind, XsType::Error as u32);
    assert_eq!(replies[0].1, b"ENOSYS\0");
    // Payload too long: the connection is dropped.
    let mut bad = wire::encode(XsType::Write as u32, 1, 0, b"");
    bad[12..16].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(h.xs.feed(g, &bad), Err(ProtocolError::PayloadTooLong { len: 5000 }));
    assert_eq!(h.xs.input_wanted(g), 0);
    assert_eq!(h.xs.feed(g, b"more"), Err(ProtocolError::NotConnected));
    // Others are unaffected; re-introduction revives it.
    assert_eq!(h.read(DOM0, "/local/domain/3/name").unwrap(), "guest3");
    h.xs.introduce_domain(DomId(3)).unwrap();
    assert_eq!(h.read(g, "name").unwrap(), "guest3");
}

#[test]
fn oversized_replies_are_e2big() {
    let mut h = Harness::new();
    for i in 0..80 {
        h.write(DOM0, &format!("/wide/{}{i}", "n".repeat(60)), "").unwrap();
    }
    assert_eq!(h.dir(DOM0, "/wide"), err("E2BIG"));
}

#[test]
fn stuck_privileged_client_has_a_bounded_backlog() {
    let q = Quotas { max_privileged_backlog: 8 * 1024, ..Quotas::default() };
    let mut h = Harness::with(q);
    let g = h.domu(3);
    let l = h.xs.open_local();
    h.watch(l, "/local/domain", "all").unwrap();
    for i in 0..2000 {
        // Distinct paths, so no two events are identical; the guest frees as it goes.
        h.write(g, &format!("data/n{i}"), "v").unwrap();
        h.rm(g, &format!("data/n{i}")).unwrap();
    }
    assert!(h.xs.conns[&l].bytes() <= 8 * 1024);
    // The dom0 client still gets its replies.
    assert_eq!(h.write(l, "/x", "1"), ok());
}

/// A hostile guest loops on every kind of allocation; its memory stays under its quota, the
/// store as a whole stays bounded, and dom0 and another guest keep working.
#[test]
fn hostile_domain_stays_bounded() {
    let q = Quotas { max_memory: 256 * 1024, ..Quotas::default() };
    let mut h = Harness::with(q);
    let evil = h.domu(6);
    let good = h.domu(7);
    let baseline = h.xs.memory_usage();
    let big = "v".repeat(1900);
    for i in 0..3000 {
        // Read as little as possible: replies pile up until the ring stalls, then one
        // message is taken (as a guest must, to make progress).
        let _ = h.send_unchecked(
            evil,
            XsType::Write,
            0,
            &[format!("data/{i}").as_bytes(), b"\0", big.as_bytes()].concat(),
        );
        let _ = h.send_unchecked(evil, XsType::Watch, 0, format!("data/{i}\0tok{i}\0").as_bytes());
        let _ = h.send_unchecked(evil, XsType::TransactionStart, 0, b"\0");
        let _ = h.send_unchecked(
            evil,
            XsType::Write,
            (i % 12) as u32,
            &[format!("data/t{i}").as_bytes(), b"\0", big.as_bytes()].concat(),
        );
        if h.xs.input_wanted(evil) == 0 {
            h.xs.pop_output(evil);
        }
        assert!(h.xs.domain_memory(DomId(6)) <= q.max_memory + 8 * 1024, "iteration {i}");
    }
    assert!(h.xs.tree.usage(DomId(6)).nodes <= q.max_nodes);
    // Events: the guest watches a directory another guest churns, and never reads its ring.
    h.drain(evil);
    h.set_perms(good, "data", &["n7", "r6"]).unwrap();
    h.watch(evil, "/local/domain/7/data", "churn").unwrap();
    for i in 0..3000 {
        h.write(good, &format!("data/c{i}"), "v").unwrap();
        h.rm(good, &format!("data/c{i}")).unwrap();
        assert!(h.xs.domain_memory(DomId(6)) <= q.max_memory + 8 * 1024, "event {i}");
    }
    assert!(h.xs.conns[&evil].has_output());
    // The store grew by at most the guest's quota (plus the other guest's few nodes).
    assert!(h.xs.memory_usage() - baseline <= q.max_memory + 16 * 1024);
    h.drain(evil);
    assert_eq!(h.write(good, "data/still", "fine"), ok());
    assert_eq!(h.read(good, "data/still").unwrap(), "fine");
    assert_eq!(h.write(DOM0, "/tool/ok", "1"), ok());
    h.check();
}

impl Harness {
    /// Sends without expecting success (the connection may be stalled).
    fn send_unchecked(&mut self, conn: ConnId, kind: XsType, tx: u32, payload: &[u8]) -> usize {
        let bytes = wire::request(kind, 1, tx, payload);
        self.xs.feed(conn, &bytes).unwrap_or(0)
    }
}

/// Small deterministic generator (xorshift64*), so the fuzz test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Feeds random, mostly almost-valid traffic from three guests and checks that nothing
/// panics, the tree stays consistent, every guest stays under its memory quota, and dom0
/// still works afterwards.
#[test]
fn random_traffic_never_panics() {
    let q = Quotas { max_nodes: 60, max_memory: 128 * 1024, ..Quotas::default() };
    let mut h = Harness::with(q);
    let guests = [h.domu(1), h.domu(2), h.domu(3)];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Transaction ids seen in TRANSACTION_START replies, per guest (to hit open ones often).
    let mut open_tx: [Vec<u32>; 3] = Default::default();
    let paths = [
        "data",
        "data/a",
        "data/a/b",
        "data/c",
        "data/a/b/c/d",
        "data/e",
        "data/a/f",
        "/local/domain/2/data/x",
        "/local/domain/3/data/a",
        "/",
        "/local",
        "device/vif/0/state",
        "@releaseDomain",
        "@introduceDomain",
        "",
        "a//b",
        "data/",
        "/local/domain/1/data",
        "name",
        "control/shutdown",
        "/tool/xenstored",
    ];
    let values = ["", "1", "hello", "x\0y"];
    let perm_sets = ["n1\0", "b2\0", "r2\0", "n3\0r1\0", "n0\0", "x\0", "r\0", "b65535\0r1\0"];
    for round in 0..20_000 {
        let guest = rng.below(guests.len());
        let conn = guests[guest];
        // Mostly the request types guests use, sometimes anything at all.
        let common = [1, 2, 3, 4, 5, 6, 7, 7, 11, 11, 11, 12, 13, 14];
        let kind =
            if rng.below(8) == 0 { rng.below(30) as u32 } else { common[rng.below(common.len())] };
        let open = &open_tx[guest];
        let tx = match rng.below(10) {
            0 => rng.next() as u32,
            1..=3 if !open.is_empty() => open[rng.below(open.len())],
            _ => 0,
        };
        let p = rng.pick(&paths);
        let value = rng.pick(&values);
        let payload: Vec<u8> = match (rng.below(8), kind) {
            (0, _) => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            (_, 7) => [rng.pick(&["T", "T", "F", "x"]).as_bytes(), b"\0"].concat(),
            (_, 11) => [p.as_bytes(), b"\0", value.as_bytes()].concat(),
            (_, 14) => [p.as_bytes(), b"\0", rng.pick(&perm_sets).as_bytes()].concat(),
            (_, 4 | 5) => [p.as_bytes(), b"\0tok\0"].concat(),
            _ => arg(p),
        };
        let mut bytes = wire::encode(kind, round, tx, &payload);
        // Sometimes corrupt the length field or truncate the message.
        match rng.below(200) {
            0 => bytes[12..16].copy_from_slice(&(rng.next() as u32).to_le_bytes()),
            1 => bytes.truncate(rng.below(bytes.len())),
            _ => {}
        }
        if open_tx[guest].len() > 12 {
            open_tx[guest].remove(0);
        }
        if h.xs.feed(conn, &bytes).is_err() {
            // Broken connection: the glue would stop serving it; revive it for more fuzzing.
            let ConnId::Domain(dom) = conn else { unreachable!() };
            h.xs.introduce_domain(dom).unwrap();
        }
        if rng.below(3) == 0 {
            for (hd, body) in h.drain(conn) {
                if hd.kind == XsType::TransactionStart as u32 {
                    let id = core::str::from_utf8(&body[..body.len() - 1]).unwrap();
                    open_tx[guest].push(id.parse().unwrap());
                }
            }
            h.events.clear();
        }
        if rng.below(2000) == 0 {
            let ConnId::Domain(dom) = conn else { unreachable!() };
            h.xs.domain_died(dom);
            h.domu(dom.0);
        }
        for g in guests {
            let ConnId::Domain(dom) = g else { unreachable!() };
            assert!(h.xs.domain_memory(dom) <= q.max_memory + 8 * 1024);
        }
    }
    h.check();
    for g in guests {
        h.drain(g);
    }
    assert_eq!(h.write(DOM0, "/after/fuzz", "ok"), ok());
    assert_eq!(h.read(DOM0, "/after/fuzz").unwrap(), "ok");
}
