//! `scenario=grants role=granter|grantee peer=<domid>`: grants between two domUs. The granter
//! grants two pages (one read-only) to its peer and a third to dom0, waits for the grantee's
//! write, then ends access; the grantee maps, copies, and tries every refusal (read-only,
//! someone else's ref, out of range, no such domain, unused ref, copy across a page end,
//! unmapping twice).

use core::sync::atomic::Ordering;

use hypercall_abi::{DomId, GrantRef};
use pv_guest::memory::pages;
use pv_guest::{grant, println, time};

/// Grants between two domUs: `role=granter peer=<domid>` grants two pages (one read-only),
/// `role=grantee peer=<domid>` maps, copies and tries every refusal.
pub fn grants(line: &str) {
    use hypercall_abi::grant_table::*;
    let peer = DomId(pv_guest::cmdline_param(line, "peer", 0u16));
    if pv_guest::cmdline_value(line, "role") == Some("granter") {
        let rw = pages::alloc_page().expect("page");
        let ro = pages::alloc_page().expect("page");
        rw.shared().u64_at(0).store(0x1111, Ordering::Relaxed);
        ro.shared().u64_at(0).store(0x2222, Ordering::Relaxed);
        let (g1, g2) = (grant::alloc_ref().expect("ref"), grant::alloc_ref().expect("ref"));
        grant::grant_access(g1, peer, rw.mfn(), false);
        grant::grant_access(g2, peer, ro.mfn(), true);
        // A third ref granted to somebody else (dom0): the grantee must be refused it.
        let other = grant::alloc_ref().expect("ref");
        grant::grant_access(other, DomId(0), rw.mfn(), false);
        println!(
            "grants: granted refs {} (rw) {} (ro) to d{}, {} to d0",
            g1.0, g2.0, peer.0, other.0
        );
        // Wait until the grantee wrote through its mapping, then end access.
        let deadline = time::now_ns() + 20_000_000_000;
        while rw.shared().u64_at(8).load(Ordering::Acquire) != 0xBEEF && time::now_ns() < deadline {
            time::sleep_ns(5_000_000);
        }
        let mut ended = false;
        while !ended && time::now_ns() < deadline {
            ended = grant::end_access(g1);
            time::sleep_ns(5_000_000);
        }
        println!(
            "RESULT grants-granter: saw write {:#x}, access ended {ended}",
            rw.shared().u64_at(8).load(Ordering::Acquire)
        );
        return;
    }
    let fails = core::cell::RefCell::new(alloc::vec::Vec::<alloc::string::String>::new());
    let check = |what: &str, got: i16, want: i16| {
        if got != want {
            fails
                .borrow_mut()
                .push(alloc::format!("{what}: {got} ({:?}) != {want}", gntst_name(got)));
        }
    };
    let (g1, g2, other) = (GrantRef(8), GrantRef(9), GrantRef(10));
    // The granter may not have granted yet: retry the first map for a while.
    let deadline = time::now_ns() + 10_000_000_000;
    let m = loop {
        match grant::map(peer, g1, false) {
            Ok(m) => break Some(m),
            Err(_) if time::now_ns() < deadline => time::sleep_ns(5_000_000),
            Err(_) => break None,
        }
    };
    let Some(m) = m else {
        println!("RESULT grants: FAIL could not map ref 8 of d{}", peer.0);
        return;
    };
    check("map rw", 0, 0);
    if m.page().u64_at(0).load(Ordering::Relaxed) != 0x1111 {
        fails.borrow_mut().push("mapped page has the wrong contents".into());
    }
    // Refusals.
    check(
        "write through a readonly grant",
        grant::map(peer, g2, false).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "ref granted to another domain",
        grant::map(peer, other, true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "ref out of range",
        grant::map(peer, GrantRef(1_000_000), true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_BAD_GNTREF,
    );
    check(
        "a domain that does not exist",
        grant::map(DomId(999), g1, true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_BAD_DOMAIN,
    );
    check(
        "unused ref",
        grant::map(peer, GrantRef(100), true).map(|_| 0).unwrap_or_else(|s| s),
        GNTST_PERMISSION_DENIED,
    );
    let ro = grant::map(peer, g2, true);
    check("map ro", ro.map(|_| 0).unwrap_or_else(|s| s), 0);
    // Copy: from the read-only grant into a page of ours, and from ours into the rw grant.
    let mine = pages::alloc_page().expect("page");
    use grant::CopyDir::{FromGrant, ToGrant};
    check("copy from a grant", grant::copy(&mine, 0, peer, g2, 0, 8, FromGrant), 0);
    if mine.shared().u64_at(0).load(Ordering::Relaxed) != 0x2222 {
        fails.borrow_mut().push("copy did not bring the data".into());
    }
    check(
        "copy into a readonly grant",
        grant::copy(&mine, 0, peer, g2, 0, 8, ToGrant),
        GNTST_PERMISSION_DENIED,
    );
    check(
        "copy across a page end",
        grant::copy(&mine, 4000, peer, g1, 0, 200, ToGrant),
        GNTST_BAD_COPY_ARG,
    );
    // Write through the rw mapping, unmap, and unmapping twice is a bad handle.
    m.page().u64_at(8).store(0xBEEF, Ordering::Release);
    let (va, handle) = (m.page().va(), m.handle());
    check("unmap", grant::unmap(m).map(|_| 0).unwrap_or_else(|s| s), 0);
    #[allow(unsafe_code)]
    // SAFETY: the mapping at `va` is gone (unmapped just above) and nothing mapped since.
    let again = unsafe { grant::unmap_handle(va, handle) };
    check("unmap twice", again, GNTST_BAD_HANDLE);
    let fails = fails.into_inner();
    if fails.is_empty() {
        println!("RESULT grants: PASS");
    } else {
        println!("RESULT grants: FAIL {fails:?}");
    }
}
