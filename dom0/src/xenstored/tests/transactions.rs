//! Transactions: isolation, conflicts (`EAGAIN`), abort, errors, events at commit.

use super::*;

#[test]
fn transaction_is_private_until_commit() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.watch(DOM0, "/local/domain/3/data", "w").unwrap();
    h.events(DOM0);
    let tx = h.tx_start(g);
    assert_eq!(tx, 1);
    assert_eq!(h.write_tx(g, tx, "data/a", "1"), ok());
    assert_eq!(h.read_tx(g, tx, "data/a").unwrap(), "1");
    assert_eq!(h.read(g, "data/a"), err("ENOENT"));
    assert!(h.events(DOM0).is_empty(), "no events before commit");
    assert_eq!(h.tx_end(g, tx, true), ok());
    assert_eq!(h.read(g, "data/a").unwrap(), "1");
    assert_eq!(h.events(DOM0), [ev("/local/domain/3/data/a", "w")]);
    // The id is gone now.
    assert_eq!(h.tx_end(g, tx, true), err("ENOENT"));
    h.check();
}

#[test]
fn transaction_conflict_is_eagain() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.write(g, "data/x", "0").unwrap();
    let tx = h.tx_start(g);
    assert_eq!(h.read_tx(g, tx, "data/x").unwrap(), "0");
    h.write(DOM0, "/local/domain/3/data/x", "changed").unwrap();
    h.write_tx(g, tx, "data/y", "1").unwrap();
    assert_eq!(h.tx_end(g, tx, true), err("EAGAIN"));
    assert_eq!(h.read(g, "data/y"), err("ENOENT"));
    // Two transactions writing the same directory: the second to commit loses.
    let t1 = h.tx_start(g);
    let t2 = h.tx_start(g);
    assert_ne!(t1, t2);
    h.write_tx(g, t1, "data/p", "1").unwrap();
    h.write_tx(g, t2, "data/q", "2").unwrap();
    assert_eq!(h.tx_end(g, t1, true), ok());
    assert_eq!(h.tx_end(g, t2, true), err("EAGAIN"));
    assert_eq!(h.dir(g, "data").unwrap(), ["x", "p"]);
    // Reading a node that does not exist, which someone then creates, conflicts too.
    let t3 = h.tx_start(g);
    assert_eq!(h.read_tx(g, t3, "data/late"), err("ENOENT"));
    h.write(g, "data/late", "1").unwrap();
    h.write_tx(g, t3, "data/other", "1").unwrap();
    assert_eq!(h.tx_end(g, t3, true), err("EAGAIN"));
    h.check();
}

#[test]
fn transaction_abort_and_errors() {
    let mut h = Harness::new();
    let g = h.domu(3);
    let tx = h.tx_start(g);
    h.write_tx(g, tx, "data/gone", "1").unwrap();
    assert_eq!(h.tx_end(g, tx, false), ok());
    assert_eq!(h.read(g, "data/gone"), err("ENOENT"));
    assert_eq!(h.read_tx(g, 99, "data"), err("ENOENT"));
    assert_eq!(h.tx_end(g, 0, true), err("ENOENT"));
    let tx = h.tx_start(g);
    assert_eq!(h.call(g, XsType::TransactionEnd, tx, b"X\0"), err("EINVAL"));
    assert_eq!(h.call(g, XsType::TransactionStart, tx, b"\0"), err("EBUSY"));
    // WATCH ignores tx_id, even an unknown one.
    assert_eq!(h.call(g, XsType::Watch, 12345, b"data\0t\0"), ok());
    // An error inside a transaction leaves it usable and unchanged.
    assert_eq!(h.write_tx(g, tx, "/forbidden", "1"), err("EACCES"));
    assert_eq!(h.write_tx(g, tx, "data/ok", "1"), ok());
    assert_eq!(h.call(g, XsType::Rm, tx, b"data\0"), ok());
    assert_eq!(h.read_tx(g, tx, "data/ok"), err("ENOENT"));
    assert_eq!(h.tx_end(g, tx, true), ok());
    assert_eq!(h.read(g, "data"), err("ENOENT"));
    // RESET_WATCHES drops watches and transactions.
    let tx = h.tx_start(g);
    assert_eq!(h.call(g, XsType::ResetWatches, 0, b"\0"), ok());
    assert_eq!(h.tx_end(g, tx, true), err("ENOENT"));
    h.check();
}

#[test]
fn transaction_events_fire_at_commit_once_per_path() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.watch(g, "data", "t").unwrap();
    h.events(g);
    let tx = h.tx_start(g);
    for i in 0..3 {
        h.write_tx(g, tx, "data/k", &format!("{i}")).unwrap();
    }
    h.write_tx(g, tx, "data/j", "x").unwrap();
    assert!(h.events(g).is_empty());
    h.tx_end(g, tx, true).unwrap();
    assert_eq!(h.events(g), [ev("data/k", "t"), ev("data/j", "t")]);
}

#[test]
fn removal_inside_a_transaction_fires_at_commit() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.write(g, "data/dev/state", "1").unwrap();
    h.watch(g, "data/dev/state", "leaf").unwrap();
    h.watch(g, "data", "top").unwrap();
    h.events(g);
    let tx = h.tx_start(g);
    h.call(g, XsType::Rm, tx, b"data/dev\0").unwrap();
    assert!(h.events(g).is_empty());
    h.tx_end(g, tx, true).unwrap();
    let mut got = h.events(g);
    got.sort();
    assert_eq!(got, [ev("data/dev", "top"), ev("data/dev/state", "leaf")]);
    h.check();
}
