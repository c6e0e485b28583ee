//! The tree: reads, writes, directory order, removal, paths, permissions, the toolstack
//! helpers and in-process clients.

use super::*;

#[test]
fn initial_tree_is_xens() {
    let mut h = Harness::new();
    assert_eq!(h.dir(DOM0, "/").unwrap(), ["tool", "local"]);
    assert_eq!(h.dir(DOM0, "/local").unwrap(), ["domain"]);
    assert_eq!(h.read(DOM0, "/tool/xenstored").unwrap(), "");
    assert_eq!(h.perms(DOM0, "/").unwrap(), "n0");
    assert_eq!(h.perms(DOM0, "@releaseDomain").unwrap(), format!("n0 r{}", DomId::ANY.0));
    assert_eq!(h.perms(DOM0, "@introduceDomain").unwrap(), "n0");
    h.check();
}

#[test]
fn write_read_and_relative_paths() {
    let mut h = Harness::new();
    let g = h.domu(5);
    assert_eq!(h.write(g, "data/x", "hello"), ok());
    assert_eq!(h.read(g, "data/x").unwrap(), "hello");
    assert_eq!(h.read(g, "/local/domain/5/data/x").unwrap(), "hello");
    assert_eq!(h.read(DOM0, "/local/domain/5/data/x").unwrap(), "hello");
    assert_eq!(h.read(g, "name").unwrap(), "guest5");
    assert_eq!(h.read(g, "domid").unwrap(), "5");
    // Binary values round-trip, including nul bytes.
    assert_eq!(h.call(g, XsType::Write, 0, b"data/bin\0a\0b"), ok());
    assert_eq!(h.call(g, XsType::Read, 0, b"data/bin\0"), Ok(b"a\0b".to_vec()));
    assert_eq!(h.call(g, XsType::GetDomainPath, 0, b"7\0"), Ok(b"/local/domain/7\0".to_vec()));
    h.check();
}

#[test]
fn write_creates_parents_owned_by_the_creator() {
    let mut h = Harness::new();
    let g = h.domu(5);
    assert_eq!(h.write(g, "data/a/b/c", "v"), ok());
    assert_eq!(h.read(g, "data/a/b").unwrap(), "");
    assert_eq!(h.perms(g, "data/a").unwrap(), "n5");
    // dom0 writing into the guest's area keeps the guest as owner (inherited).
    assert_eq!(h.write(DOM0, "/local/domain/5/data/from0", "x"), ok());
    assert_eq!(h.perms(g, "data/from0").unwrap(), "n5");
    // A node a domU creates in a directory it was granted is owned by the domU but keeps
    // the inherited grants.
    assert_eq!(h.write(DOM0, "/shared/dir", ""), ok());
    assert_eq!(h.set_perms(DOM0, "/shared/dir", &["r0", "b5"]), ok());
    assert_eq!(h.write(g, "/shared/dir/mine", "1"), ok());
    assert_eq!(h.perms(g, "/shared/dir/mine").unwrap(), "r5 b5");
    h.check();
}

#[test]
fn directory_lists_children_in_creation_order() {
    let mut h = Harness::new();
    for name in ["zeta", "alpha", "mid", "beta"] {
        h.write(DOM0, &format!("/order/{name}"), "").unwrap();
    }
    assert_eq!(h.dir(DOM0, "/order").unwrap(), ["zeta", "alpha", "mid", "beta"]);
    h.rm(DOM0, "/order/alpha").unwrap();
    h.write(DOM0, "/order/alpha", "").unwrap();
    assert_eq!(h.dir(DOM0, "/order").unwrap(), ["zeta", "mid", "beta", "alpha"]);
    assert_eq!(h.dir(DOM0, "/order/zeta").unwrap(), Vec::<String>::new());
}

#[test]
fn mkdir_keeps_existing_values() {
    let mut h = Harness::new();
    h.write(DOM0, "/m/x", "keep").unwrap();
    assert_eq!(h.call(DOM0, XsType::Mkdir, 0, b"/m/x\0"), ok());
    assert_eq!(h.read(DOM0, "/m/x").unwrap(), "keep");
    assert_eq!(h.call(DOM0, XsType::Mkdir, 0, b"/m/y/z\0"), ok());
    assert_eq!(h.dir(DOM0, "/m/y").unwrap(), ["z"]);
}

#[test]
fn rm_rules() {
    let mut h = Harness::new();
    h.write(DOM0, "/a/b/c", "1").unwrap();
    assert_eq!(h.rm(DOM0, "/a/missing"), ok());
    assert_eq!(h.rm(DOM0, "/nothere/child"), err("ENOENT"));
    assert_eq!(h.rm(DOM0, "/"), err("EINVAL"));
    assert_eq!(h.rm(DOM0, "/a"), ok());
    assert_eq!(h.read(DOM0, "/a/b/c"), err("ENOENT"));
    assert_eq!(h.dir(DOM0, "/").unwrap(), ["tool", "local"]);
    h.check();
}

#[test]
fn invalid_paths_and_arguments() {
    let mut h = Harness::new();
    let g = h.domu(3);
    for bad in ["", "/a/", "/a//b", "/a b", "/x.y", "@releaseDomain"] {
        assert_eq!(h.read(DOM0, bad), err("EINVAL"), "{bad:?}");
    }
    // Not exactly one nul-terminated argument.
    assert_eq!(h.call(DOM0, XsType::Read, 0, b"/tool"), err("EINVAL"));
    assert_eq!(h.call(DOM0, XsType::Read, 0, b"/tool\0/local\0"), err("EINVAL"));
    assert_eq!(h.call(DOM0, XsType::Write, 0, b"/no-nul"), err("EINVAL"));
    // The path-length quota applies below the domain's home.
    let long = format!("data/{}", "x".repeat(2048));
    assert_eq!(h.write(g, &long, ""), err("EINVAL"));
    assert_eq!(h.write(g, &long[..2040], ""), ok());
}

#[test]
fn domu_cannot_read_another_domus_nodes() {
    let mut h = Harness::new();
    let a = h.domu(1);
    let b = h.domu(2);
    h.write(a, "data/secret", "s").unwrap();
    assert_eq!(h.read(b, "/local/domain/1/data/secret"), err("EACCES"));
    assert_eq!(h.dir(b, "/local/domain/1"), err("EACCES"));
    // A missing node in an unreadable directory is EACCES too: no existence probing.
    assert_eq!(h.read(b, "/local/domain/1/data/nothing"), err("EACCES"));
    assert_eq!(h.read(a, "data/nothing"), err("ENOENT"));
    assert_eq!(h.write(b, "/local/domain/1/data/secret", "x"), err("EACCES"));
    assert_eq!(h.rm(b, "/local/domain/1/data/secret"), err("EACCES"));
    assert_eq!(h.read(a, "data/secret").unwrap(), "s");
    // Neither can write outside its areas: "/" and its read-only home belong to dom0.
    assert_eq!(h.write(a, "/evil", "x"), err("EACCES"));
    assert_eq!(h.write(a, "name", "renamed"), err("EACCES"));
    assert_eq!(h.write(a, "newdir/x", "1"), err("EACCES"));
    assert_eq!(h.read(a, "name").unwrap(), "guest1");
    // Privileged operations.
    assert_eq!(h.call(a, XsType::Introduce, 0, b"9\x00100\x001\0"), err("EACCES"));
    assert_eq!(h.call(a, XsType::Release, 0, b"2\0"), err("EACCES"));
    assert_eq!(h.call(a, XsType::IsDomainIntroduced, 0, b"2\0"), err("EACCES"));
    h.check();
}

#[test]
fn owners_grant_and_only_dom0_changes_owners() {
    let mut h = Harness::new();
    let a = h.domu(1);
    let b = h.domu(2);
    h.write(a, "data/shared", "v").unwrap();
    assert_eq!(h.set_perms(a, "data/shared", &["n1", "r2"]), ok());
    assert_eq!(h.read(b, "/local/domain/1/data/shared").unwrap(), "v");
    assert_eq!(h.write(b, "/local/domain/1/data/shared", "w"), err("EACCES"));
    assert_eq!(h.set_perms(b, "/local/domain/1/data/shared", &["b2"]), err("EACCES"));
    assert_eq!(h.set_perms(a, "data/shared", &["n2"]), err("EPERM"));
    assert_eq!(h.set_perms(a, "data/shared", &["x1"]), err("EINVAL"));
    assert_eq!(h.set_perms(a, "data/shared", &[]), err("EINVAL"));
    assert_eq!(h.set_perms(a, "data/shared", &["n1", "r32757"]), err("EINVAL"));
    assert_eq!(h.set_perms(DOM0, "/local/domain/1/data/shared", &["n2"]), ok());
    assert_eq!(h.perms(b, "/local/domain/1/data/shared").unwrap(), "n2");
    assert_eq!(h.read(a, "data/shared"), err("EACCES"));
    assert_eq!(h.write(b, "/local/domain/1/data/shared", "mine"), ok());
    // "b<owner>" as the first entry gives everyone else read and write.
    assert_eq!(h.set_perms(b, "/local/domain/1/data/shared", &["b2"]), ok());
    assert_eq!(h.read(a, "data/shared").unwrap(), "mine");
    // Too many entries for an unprivileged domain.
    let many = ["n2", "r1", "r3", "r4", "r5", "r6"];
    assert_eq!(h.set_perms(b, "/local/domain/1/data/shared", &many), err("ENOSPC"));
    assert_eq!(h.set_perms(DOM0, "/local/domain/1/data/shared", &many), ok());
}

#[test]
fn set_target_acts_for_the_target() {
    let mut h = Harness::new();
    let guest = h.domu(4);
    let stub = h.domu(5);
    h.write(guest, "data/x", "1").unwrap();
    assert_eq!(h.read(stub, "/local/domain/4/data/x"), err("EACCES"));
    assert_eq!(h.call(DOM0, XsType::SetTarget, 0, b"5\x004\0"), ok());
    assert_eq!(h.read(stub, "/local/domain/4/data/x").unwrap(), "1");
    assert_eq!(h.call(DOM0, XsType::SetTarget, 0, b"5\x009\0"), err("ENOENT"));
}

#[test]
fn toolstack_home_layout() {
    let mut h = Harness::new();
    h.domu(9);
    assert_eq!(h.perms(DOM0, "/local/domain/9").unwrap(), "n0 r9");
    assert_eq!(h.perms(DOM0, "/local/domain/9/device").unwrap(), "n0 r9");
    assert_eq!(h.perms(DOM0, "/local/domain/9/data").unwrap(), "n9");
    assert_eq!(h.perms(DOM0, "/local/domain/9/control/shutdown").unwrap(), "n9");
    assert_eq!(h.perms(DOM0, "/local/domain/9/name").unwrap(), "n0 r9");
    // Recreating replaces the old home.
    h.write(d(9), "data/old", "x").unwrap();
    h.xs.create_domain_home(DomId(9), "renamed").unwrap();
    assert_eq!(h.read(d(9), "data/old"), err("ENOENT"));
    assert_eq!(h.read(d(9), "name").unwrap(), "renamed");
    assert_eq!(h.xs.read_privileged("/local/domain/9/domid"), Ok(b"9".to_vec()));
    assert_eq!(h.xs.create_domain_home(DomId::SELF_, "x"), Err(Errno::EINVAL));
    h.check();
}

#[test]
fn in_process_clients_use_process_and_pop_output() {
    let mut xs = XenStore::new(Quotas::default());
    let l = xs.open_local();
    let hdr = XsdSockmsg { kind: XsType::Write as u32, req_id: 5, tx_id: 0, len: 6 };
    xs.process(l, hdr, b"/k\0val");
    let reply = xs.pop_output(l).unwrap();
    let (h, body) = wire::decode(&reply).unwrap();
    assert_eq!((h.kind, h.req_id, body), (XsType::Write as u32, 5, &b"OK\0"[..]));
    assert_eq!(xs.read_privileged("/k"), Ok(b"val".to_vec()));
    // Relative paths of local clients resolve under dom0's home.
    xs.write_privileged("/local/domain/0/rel", b"1").unwrap();
    let hdr = XsdSockmsg { kind: XsType::Read as u32, req_id: 6, tx_id: 0, len: 4 };
    xs.process(l, hdr, b"rel\0");
    let reply = xs.pop_output(l).unwrap();
    assert_eq!(wire::decode(&reply).unwrap().1, b"1");
    xs.close_local(l);
    assert_eq!(xs.pop_output(l), None);
}
