//! Grant map, unmap and copy of one 4 KiB page, checked and timed: a copy must bring exactly
//! what the mapping shows, then the figures (map+unmap, map+read+unmap, copy, and the floors:
//! a read of an already-mapped shared page and a plain memcpy) print as `BENCH` lines.
//! `test=grantbench` runs it in dom0 on a page dom0 granted to itself (which real Xen allows
//! too, so the figures compare directly); the `drvbench` scenario runs it in a domU against a
//! page another domU granted.

use alloc::string::String;
use alloc::vec;

use hypercall_abi::{DomId, GrantRef, guest};
use pv_guest::bench::{bench_line, measure};
use pv_guest::grant::{self, CopyDir};
use pv_guest::memory::pages;

use super::run::Test::{self, Check};

/// The self-tests of this file, by the name `test=` gives them.
pub const TESTS: &[(&str, Test)] = &[
    ("grantbench", Check(grant_self)),
    ("grantcopy", Check(grant_copy_naming)),
    ("grantmaps", Check(grant_map_kinds)),
];

/// Batches per figure (the median batch is reported) and operations per batch.
const BATCHES: usize = 11;
const ITERS: u64 = 200;

/// Grant figures for `gref` of `dom`, which must grant us read access to a page.
pub fn grant_bench(dom: DomId, gref: GrantRef) -> Result<(), String> {
    let mine = pages::alloc_page().ok_or("no free page")?;
    let mut buf = vec![0u8; 4096];
    // Once by hand, so a refusal is an error rather than a fast figure, and the copy must
    // bring exactly what the mapping shows.
    let m = grant::map(dom, gref, true).map_err(|s| alloc::format!("map: {s}"))?;
    let mut seen = vec![0u8; 4096];
    m.page().read(0, &mut seen);
    grant::unmap(m).map_err(|s| alloc::format!("unmap: {s}"))?;
    mine.shared().write(0, &[0xFF; 4096]);
    let copy = || grant::copy(&mine, 0, dom, gref, 0, 4096, CopyDir::FromGrant);
    match copy() {
        0 => {}
        s => return Err(alloc::format!("copy: {s}")),
    }
    mine.shared().read(0, &mut buf);
    if buf != seen {
        return Err("the copy differs from the granted page".into());
    }
    let mut failures = 0u32;
    bench_line(
        "grant-map-unmap",
        measure(BATCHES, ITERS, || match grant::map(dom, gref, true) {
            Ok(m) => failures += u32::from(grant::unmap(m).is_err()),
            Err(_) => failures += 1,
        }),
    );
    bench_line(
        "grant-map-read4k-unmap",
        measure(BATCHES, ITERS, || match grant::map(dom, gref, true) {
            Ok(m) => {
                m.page().read(0, &mut buf);
                failures += u32::from(grant::unmap(m).is_err());
            }
            Err(_) => failures += 1,
        }),
    );
    bench_line(
        "grant-copy-4k",
        measure(BATCHES, ITERS, || {
            failures += u32::from(copy() != 0);
        }),
    );
    // The floors: reading 4 KiB of an already-mapped shared page the way the mapping variant
    // does, and a plain memcpy between private buffers.
    let page = mine.shared();
    bench_line("shared-read-4k", measure(BATCHES, ITERS, || page.read(0, &mut buf)));
    let src = vec![0x5au8; 4096];
    bench_line(
        "memcpy-4k",
        measure(BATCHES, ITERS, || {
            buf.copy_from_slice(core::hint::black_box(&src));
            core::hint::black_box(&mut buf);
        }),
    );
    if failures > 0 {
        return Err(alloc::format!("{failures} operations failed during the run"));
    }
    Ok(())
}

/// dom0 maps and copies a page it granted to itself (`test=grantbench`).
pub fn grant_self() -> Result<(), String> {
    if !pv_guest::start_info().is_initdomain() {
        return Err("dom0 only (a domU uses scenario=drvbench)".into());
    }
    let page = pages::alloc_page().ok_or("no free page")?;
    let pattern: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    page.shared().write(0, &pattern);
    let gref = grant::alloc_ref().ok_or("no free grant ref")?;
    grant::grant_access(gref, DomId(0), page.mfn(), true);
    let r = grant_bench(DomId(0), gref);
    grant::end_access(gref);
    r
}

/// How a grant copy names its two sides, as Xen 4.17 has it: a grant's owner may be given as
/// DOMID_SELF (this domain's own table), a frame only with DOMID_SELF (its real id is refused
/// with `GNTST_permission_denied`); and `query_size` reports Xen's default of 64 frames.
pub fn grant_copy_naming() -> Result<(), String> {
    use hypercall_abi::grant_table::{
        GNTCOPY_SOURCE_GREF, GNTST_OKAY, GNTST_PERMISSION_DENIED, GnttabCopy, GnttabCopyPtr,
    };
    let size =
        guest::gnttab_query_size(DomId::SELF_).map_err(|e| alloc::format!("query_size: {e:?}"))?;
    if size.max_nr_frames != 64 || size.nr_frames == 0 {
        return Err(alloc::format!(
            "query_size: {} of {} frames",
            size.nr_frames,
            size.max_nr_frames
        ));
    }
    let me = guest::own_domid().map_err(|e| alloc::format!("own domid: {e:?}"))?;
    let (src, dst) =
        (pages::alloc_page().ok_or("no free page")?, pages::alloc_page().ok_or("no free page")?);
    src.shared().write(0, b"named by DOMID_SELF");
    let gref = grant::alloc_ref().ok_or("no free grant ref")?;
    grant::grant_access(gref, me, src.mfn(), true);
    let status = grant::copy(&dst, 0, DomId::SELF_, gref, 0, 19, grant::CopyDir::FromGrant);
    let mut got = [0u8; 19];
    dst.shared().read(0, &mut got);
    // The frame side named by the real id: refused.
    let mut op = GnttabCopy {
        source: GnttabCopyPtr::gref(DomId::SELF_, gref, 0),
        dest: GnttabCopyPtr::gmfn(me, dst.mfn().into(), 0),
        len: 4,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    };
    #[allow(unsafe_code)]
    // SAFETY: the op matches GNTTABOP_copy and names only this kernel's own pages, which are
    // accessed atomically only (and the hypervisor refuses it anyway).
    let r = unsafe {
        guest::grant_table_op(
            hypercall_abi::grant_table::GNTTABOP_COPY,
            core::slice::from_mut(&mut op),
        )
    };
    grant::end_access(gref);
    if status != GNTST_OKAY || &got != b"named by DOMID_SELF" {
        return Err(alloc::format!("copy from own grant by DOMID_SELF: status {status}, {got:?}"));
    }
    if r.is_err() || op.status != GNTST_PERMISSION_DENIED {
        return Err(alloc::format!("frame named by own id: {r:?} status {}", op.status));
    }
    Ok(())
}

/// The other ways to map a grant, as Xen 4.17 has them: for a device only (no PTE; the bus
/// address is the frame's machine address, and unmapping checks it), and
/// `GNTTABOP_unmap_and_replace` (the entry at another address takes the grant's place).
pub fn grant_map_kinds() -> Result<(), String> {
    use hypercall_abi::grant_table::{
        GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP, GNTST_BAD_DEV_ADDR, GNTST_OKAY, GNTTABOP_MAP_GRANT_REF,
        GNTTABOP_UNMAP_AND_REPLACE, GNTTABOP_UNMAP_GRANT_REF, GnttabMapGrantRef,
        GnttabUnmapAndReplace, GnttabUnmapGrantRef,
    };
    let me = guest::own_domid().map_err(|e| alloc::format!("own domid: {e:?}"))?;
    let granted = pages::alloc_page().ok_or("no free page")?;
    granted.shared().write(0, b"the granted page");
    let gref = grant::alloc_ref().ok_or("no free grant ref")?;
    grant::grant_access(gref, me, granted.mfn(), false);
    fn op<T: zerocopy::IntoBytes + zerocopy::FromBytes>(cmd: u32, o: &mut T) -> Result<(), String> {
        #[allow(unsafe_code)]
        // SAFETY: every op below matches its command and names only this kernel's own grant,
        // pages and mapping slots.
        let r = unsafe { guest::grant_table_op(cmd, core::slice::from_mut(o)) };
        r.map(|_| ()).map_err(|e| alloc::format!("grant_table_op {cmd}: {e:?}"))
    }
    // Device only: no PTE, the bus address is the machine address.
    let mut m = GnttabMapGrantRef { flags: GNTMAP_DEVICE_MAP, gref, dom: me, ..Default::default() };
    op(GNTTABOP_MAP_GRANT_REF, &mut m)?;
    let want = granted.mfn().0 << 12;
    if m.status != GNTST_OKAY || m.dev_bus_addr != want {
        return Err(alloc::format!("device map: status {}, bus {:#x}", m.status, m.dev_bus_addr));
    }
    let mut u =
        GnttabUnmapGrantRef { dev_bus_addr: want + 4096, handle: m.handle, ..Default::default() };
    op(GNTTABOP_UNMAP_GRANT_REF, &mut u)?;
    if u.status != GNTST_BAD_DEV_ADDR {
        return Err(alloc::format!("unmap with a wrong bus address: status {}", u.status));
    }
    u.dev_bus_addr = want;
    op(GNTTABOP_UNMAP_GRANT_REF, &mut u)?;
    if u.status != GNTST_OKAY {
        return Err(alloc::format!("device unmap: status {}", u.status));
    }
    // Unmap and replace: the grant mapped at one slot, an own page at another; afterwards the
    // first slot maps the own page.
    let own = pages::alloc_page().ok_or("no free page")?;
    own.shared().write(0, b"the replacing page");
    let (slot, other) =
        (pages::alloc_slot().ok_or("no slot")?, pages::alloc_slot().ok_or("no slot")?);
    let mut m = GnttabMapGrantRef {
        host_addr: slot,
        flags: GNTMAP_HOST_MAP,
        gref,
        dom: me,
        ..Default::default()
    };
    op(GNTTABOP_MAP_GRANT_REF, &mut m)?;
    if m.status != GNTST_OKAY {
        return Err(alloc::format!("host map: status {}", m.status));
    }
    #[allow(unsafe_code)]
    // SAFETY: `other` is a fresh slot nothing else uses; it maps one of the kernel's own
    // pages a second time, which is only read through the hypervisor's view here.
    unsafe {
        guest::update_va_mapping(
            hypercall_abi::VAddr(other),
            (own.mfn().0 << 12) | 0x67,
            hypercall_abi::mmu::Uvmf(hypercall_abi::mmu::UVMF_INVLPG),
        )
    }
    .map_err(|e| alloc::format!("map own page: {e:?}"))?;
    let mut r = GnttabUnmapAndReplace {
        host_addr: slot,
        new_addr: other,
        handle: m.handle,
        ..Default::default()
    };
    op(GNTTABOP_UNMAP_AND_REPLACE, &mut r)?;
    let now = pages::mapped_mfn(slot);
    let gone = pages::mapped_mfn(other);
    grant::end_access(gref);
    if r.status != GNTST_OKAY || now != Some(own.mfn()) || gone.is_some() {
        return Err(alloc::format!(
            "unmap_and_replace: status {}, slot maps {now:?} (want {:?}), other {gone:?}",
            r.status,
            own.mfn()
        ));
    }
    Ok(())
}
