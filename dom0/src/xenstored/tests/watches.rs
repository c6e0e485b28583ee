//! Watches, special watches (`@introduceDomain`, `@releaseDomain`) and domain lifecycle.

use super::*;

#[test]
fn watch_fires_once_on_registration_then_on_changes() {
    let mut h = Harness::new();
    let g = h.domu(3);
    assert_eq!(h.watch(g, "data", "tok"), ok());
    assert_eq!(h.events(g), [ev("data", "tok")]);
    h.write(g, "data/x", "1").unwrap();
    assert_eq!(h.events(g), [ev("data/x", "tok")]);
    h.write(DOM0, "/local/domain/3/data/y/z", "2").unwrap();
    assert_eq!(h.events(g), [ev("data/y/z", "tok")]);
    // Absolute watch, absolute paths; unrelated changes are silent.
    assert_eq!(h.watch(g, "/local/domain/3/data/x", "abs"), ok());
    assert_eq!(h.events(g), [ev("/local/domain/3/data/x", "abs")]);
    h.write(g, "data/x", "3").unwrap();
    assert_eq!(h.events(g), [ev("data/x", "tok"), ev("/local/domain/3/data/x", "abs")]);
    h.write(DOM0, "/elsewhere", "").unwrap();
    assert!(h.events(g).is_empty());
    // MKDIR of an existing node changes nothing and fires nothing.
    h.call(g, XsType::Mkdir, 0, b"data/x\0").unwrap();
    assert!(h.events(g).is_empty());
    // Duplicates and unwatch.
    assert_eq!(h.watch(g, "data", "tok"), err("EEXIST"));
    assert_eq!(h.call(g, XsType::Unwatch, 0, b"data\0tok\0"), ok());
    assert_eq!(h.call(g, XsType::Unwatch, 0, b"data\0tok\0"), err("ENOENT"));
    h.write(g, "data/q", "1").unwrap();
    assert!(h.events(g).is_empty());
}

#[test]
fn watch_reply_precedes_the_initial_event() {
    let mut h = Harness::new();
    let req = h.send(DOM0, XsType::Watch, 0, b"/w\0t\0");
    let first = wire::decode(&h.xs.pop_output(DOM0).unwrap()).map(|(hd, _)| hd).unwrap();
    assert_eq!((first.kind, first.req_id), (XsType::Watch as u32, req));
    let second = wire::decode(&h.xs.pop_output(DOM0).unwrap()).map(|(hd, _)| hd).unwrap();
    assert_eq!(second.kind, XsType::WatchEvent as u32);
}

#[test]
fn watches_respect_read_permission() {
    let mut h = Harness::new();
    let a = h.domu(1);
    let b = h.domu(2);
    h.write(a, "data/x", "1").unwrap();
    // b may register the watch (and gets the initial event), but never sees a's changes.
    h.watch(b, "/local/domain/1/data", "peek").unwrap();
    assert_eq!(h.events(b), [ev("/local/domain/1/data", "peek")]);
    h.write(a, "data/x", "2").unwrap();
    assert!(h.events(b).is_empty());
    // Once granted read access, it does.
    h.set_perms(a, "data/x", &["n1", "r2"]).unwrap();
    assert_eq!(h.events(b), [ev("/local/domain/1/data/x", "peek")]);
    h.write(a, "data/x", "3").unwrap();
    assert_eq!(h.events(b), [ev("/local/domain/1/data/x", "peek")]);
    // Losing access by a permission change is still reported (old permissions count).
    h.set_perms(a, "data/x", &["n1"]).unwrap();
    assert_eq!(h.events(b), [ev("/local/domain/1/data/x", "peek")]);
    h.write(a, "data/x", "4").unwrap();
    assert!(h.events(b).is_empty());
}

#[test]
fn rm_of_a_subtree_fires_watches() {
    let mut h = Harness::new();
    h.write(DOM0, "/a/b/c", "1").unwrap();
    h.write(DOM0, "/a/b/d", "1").unwrap();
    let l = ConnId::Local(0);
    let l = {
        let id = h.xs.open_local();
        assert_eq!(id, l);
        id
    };
    for (p, t) in [("/a", "top"), ("/a/b/c", "leaf"), ("/", "root"), ("/a/b/nonexistent", "none")] {
        h.watch(l, p, t).unwrap();
    }
    h.events(l);
    h.rm(DOM0, "/a").unwrap();
    let mut got = h.events(l);
    got.sort();
    let mut want = vec![ev("/a", "top"), ev("/a", "root"), ev("/a/b/c", "leaf")];
    want.sort();
    assert_eq!(got, want);
    // A guest watching its own node hears about its removal by dom0, relative path intact.
    let g = h.domu(6);
    h.write(g, "data/dev/state", "4").unwrap();
    h.watch(g, "data/dev/state", "st").unwrap();
    h.events(g);
    h.rm(DOM0, "/local/domain/6/data/dev").unwrap();
    assert_eq!(h.events(g), [ev("data/dev/state", "st")]);
    h.check();
}

#[test]
fn identical_pending_events_are_merged() {
    let mut h = Harness::new();
    let g = h.domu(3);
    h.watch(g, "data", "t").unwrap();
    h.events(g);
    for _ in 0..5 {
        h.write(DOM0, "/local/domain/3/data/x", "v").unwrap();
    }
    assert_eq!(h.events(g), [ev("data/x", "t")]);
}

#[test]
fn special_watches() {
    let mut h = Harness::new();
    let l = h.xs.open_local();
    h.watch(l, "@introduceDomain", "intro").unwrap();
    h.watch(l, "@releaseDomain", "rel").unwrap();
    assert_eq!(h.events(l), [ev("@introduceDomain", "intro"), ev("@releaseDomain", "rel")]);
    // A domU may watch @releaseDomain (readable by any domain) but not @introduceDomain.
    let g = h.domu(2);
    h.watch(g, "@introduceDomain", "gi").unwrap();
    h.watch(g, "@releaseDomain", "gr").unwrap();
    h.events(g);
    assert_eq!(h.events(l), [ev("@introduceDomain", "intro")]);
    assert_eq!(h.call(DOM0, XsType::Introduce, 0, b"7\x00123\x005\0\0"), ok());
    assert_eq!(
        h.xs.take_actions(),
        [Action::Introduce { dom: DomId(7), mfn: Mfn(123), port: EvtchnPort(5) }]
    );
    assert_eq!(h.events(l), [ev("@introduceDomain", "intro")]);
    assert!(h.events(g).is_empty());
    assert_eq!(h.call(DOM0, XsType::IsDomainIntroduced, 0, b"7\0"), Ok(b"T\0".to_vec()));
    assert_eq!(h.call(DOM0, XsType::IsDomainIntroduced, 0, b"8\0"), Ok(b"F\0".to_vec()));
    // Re-introducing (e.g. after resume) rebinds but does not fire again.
    assert_eq!(h.call(DOM0, XsType::Introduce, 0, b"7\x00123\x006\0"), ok());
    assert_eq!(h.xs.take_actions().len(), 1);
    assert!(h.events(l).is_empty());
    // RELEASE: glue action, @releaseDomain to everyone who may see it.
    assert_eq!(h.call(DOM0, XsType::Release, 0, b"7\0"), ok());
    assert_eq!(h.xs.take_actions(), [Action::Release { dom: DomId(7) }]);
    assert_eq!(h.events(l), [ev("@releaseDomain", "rel")]);
    assert_eq!(h.events(g), [ev("@releaseDomain", "gr")]);
    assert_eq!(h.call(DOM0, XsType::Release, 0, b"7\0"), err("ENOENT"));
    assert_eq!(h.call(DOM0, XsType::Release, 0, b"0\0"), err("EINVAL"));
    assert_eq!(h.call(DOM0, XsType::Introduce, 0, b"0\x001\x001\0"), err("EINVAL"));
    assert_eq!(h.call(DOM0, XsType::Introduce, 0, b"7\x001\x000\0"), err("EINVAL"));
    assert_eq!(h.call(DOM0, XsType::Introduce, 0, b"7\x001\0"), err("EINVAL"));
    // A shutdown fires once until RESUME.
    h.xs.domain_shutdown(DomId(2));
    h.xs.domain_shutdown(DomId(2));
    assert_eq!(h.events(l), [ev("@releaseDomain", "rel")]);
    assert_eq!(h.call(DOM0, XsType::Resume, 0, b"2\0"), ok());
    h.xs.domain_shutdown(DomId(2));
    assert_eq!(h.events(l), [ev("@releaseDomain", "rel")]);
}

#[test]
fn domain_death_cleans_up() {
    let mut h = Harness::new();
    let a = h.domu(1);
    let b = h.domu(2);
    h.write(a, "data/x", "1").unwrap();
    h.write(b, "data/y", "1").unwrap();
    h.set_perms(b, "data/y", &["n2", "r1"]).unwrap();
    h.watch(a, "/local/domain/2/data/y", "w").unwrap();
    let tx = h.tx_start(a);
    h.events(a);
    h.watch(b, "/local/domain/1/data/x", "gone").unwrap();
    h.set_perms(a, "data/x", &["n1", "r2"]).unwrap();
    h.events(b);
    let l = h.xs.open_local();
    h.watch(l, "@releaseDomain", "rel").unwrap();
    h.events(l);

    h.xs.domain_died(DomId(1));
    assert!(!h.xs.is_introduced(DomId(1)));
    assert_eq!(h.xs.input_wanted(a), 0);
    assert_eq!(h.xs.feed(a, b"x"), Err(ProtocolError::NotConnected));
    // Its nodes are gone (watchers told), its grants stripped, @releaseDomain fired.
    assert_eq!(h.events(b), [ev("/local/domain/1/data/x", "gone")]);
    assert_eq!(h.read(DOM0, "/local/domain/1/data"), err("ENOENT"));
    assert_eq!(h.read(DOM0, "/local/domain/1/name").unwrap(), "guest1");
    assert_eq!(h.perms(DOM0, "/local/domain/2/data/y").unwrap(), "n2");
    assert_eq!(h.perms(DOM0, "/local/domain/2").unwrap(), "n0 r2");
    assert_eq!(h.events(l), [ev("@releaseDomain", "rel")]);
    // A new domain 1 starts from nothing: no watches, no transaction, no grants.
    h.domu(1);
    assert_eq!(h.tx_end(a, tx, true), err("ENOENT"));
    assert_eq!(h.read(a, "/local/domain/2/data/y"), err("EACCES"));
    h.write(b, "data/y", "2").unwrap();
    assert!(h.events(a).is_empty());
    h.xs.remove_domain_home(DomId(1)).unwrap();
    assert_eq!(h.dir(DOM0, "/local/domain").unwrap(), ["2"]);
    h.check();
}

#[test]
fn granting_special_nodes_lets_domus_watch_them() {
    let mut h = Harness::new();
    let g = h.domu(2);
    h.watch(g, "@introduceDomain", "i").unwrap();
    h.events(g);
    h.xs.introduce_domain(DomId(3)).unwrap();
    assert!(h.events(g).is_empty());
    let perms = Perms::new(DomId(0), Access::None).with(DomId(2), Access::Read);
    h.xs.set_perms_privileged("@introduceDomain", perms).unwrap();
    // A permission change is a change like any other (Xen fires it too).
    assert_eq!(h.events(g), [ev("@introduceDomain", "i")]);
    h.xs.introduce_domain(DomId(4)).unwrap();
    assert_eq!(h.events(g), [ev("@introduceDomain", "i")]);
    assert_eq!(h.set_perms(g, "@introduceDomain", &["b2"]), err("EACCES"));
    let self_ = format!("{}\0", DomId::SELF_.0);
    assert_eq!(h.call(DOM0, XsType::IsDomainIntroduced, 0, self_.as_bytes()), Ok(b"T\0".to_vec()));
}
