//! Unit tests of the frame table and validation rules: each test builds tables in a fake
//! memory and checks both the answer and the reference counts left behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use hypercall_abi::{DomId, Errno, Mfn};

use super::types::{ENTRIES, PTE_PRESENT, PTE_RW, PTE_USER};
use super::*;

#[derive(Default)]
struct FakeMem(HashMap<u64, Box<[u64; ENTRIES]>>);

impl PageMem for FakeMem {
    fn read_pte(&self, table: Mfn, index: usize) -> u64 {
        self.0.get(&table.0).map_or(0, |t| t[index])
    }
    fn write_pte(&mut self, table: Mfn, index: usize, value: u64) {
        self.0.entry(table.0).or_insert_with(|| Box::new([0; ENTRIES]))[index] = value;
    }
}

const D1: DomId = DomId(1);
const D2: DomId = DomId(2);
const XEN_ENTRY: u64 = 0xABC000 | PTE_PRESENT;

/// One CPU's TLB as the flush clock sees it: `flush` is a full flush the guest (or a context
/// switch) asked for; `flushes` counts those the frame table's TLB rule made.
#[derive(Default)]
struct FakeTlb {
    clock: AtomicU32,
    flushed_at: AtomicU32,
    rule_flushes: AtomicU32,
}

impl FakeTlb {
    fn flush(&self) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.flushed_at.store(now, Ordering::SeqCst);
    }
    fn rule_flushes(&self) -> u32 {
        self.rule_flushes.load(Ordering::SeqCst)
    }
}

impl Tlb for FakeTlb {
    fn clock(&self) -> u32 {
        self.clock.load(Ordering::SeqCst)
    }
    fn flush_stale(&self, stamp: u32) {
        if !tlb::flushed_since(self.flushed_at.load(Ordering::SeqCst), stamp) {
            self.rule_flushes.fetch_add(1, Ordering::SeqCst);
            self.flush();
        }
    }
}

fn mm(frames: usize) -> Mm<'static> {
    mm_with_tlb(frames).0
}

fn mm_with_tlb(frames: usize) -> (Mm<'static>, &'static FakeTlb) {
    let f = Box::leak(vec![FrameInfo::RESERVED; frames].into_boxed_slice());
    let m = Box::leak(vec![0u64; frames].into_boxed_slice());
    let tlb: &'static FakeTlb = Box::leak(Box::default());
    // Boot: the CPU has flushed since the frames were last (never) mapped.
    tlb.flush();
    let mut mm = Mm::new(f, m, [XEN_ENTRY; 16], tlb);
    mm.add_free(Mfn(16), Mfn(frames as u64));
    mm.domain_create(D1, 100, false).unwrap();
    mm.domain_create(D2, 100, false).unwrap();
    (mm, tlb)
}

fn pte(mfn: Mfn, flags: u64) -> u64 {
    (mfn.0 << 12) | flags
}

/// A 4-level chain for D1 mapping `data` at VA 0: returns (l4, l3, l2, l1).
fn chain(mm: &mut Mm<'_>, mem: &mut FakeMem, data: Mfn, rw: bool) -> [Mfn; 4] {
    let t: Vec<Mfn> = (0..4).map(|_| mm.domain_alloc(D1).unwrap()).collect();
    // Fresh tables are zero, as the hypervisor hands them out (a reused frame keeps nothing).
    for f in &t {
        mem.0.remove(&f.0);
    }
    mem.write_pte(t[3], 0, pte(data, PTE_PRESENT | if rw { PTE_RW } else { 0 }));
    mem.write_pte(t[2], 0, pte(t[3], PTE_PRESENT | PTE_RW));
    mem.write_pte(t[1], 0, pte(t[2], PTE_PRESENT | PTE_RW));
    mem.write_pte(t[0], 0, pte(t[1], PTE_PRESENT | PTE_RW));
    [t[0], t[1], t[2], t[3]]
}

#[test]
fn pin_validates_whole_tree_and_unpin_releases_it() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let data = mm.domain_alloc(D1).unwrap();
    let [l4, l3, l2, l1] = chain(&mut mm, &mut mem, data, true);
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    assert_eq!(mm.frame(l1).unwrap().ptype, PageType::L1);
    assert_eq!(mm.frame(l3).unwrap().type_count, 1);
    assert_eq!(mm.frame(data).unwrap().ptype, PageType::Writable);
    assert_eq!(mm.frame(data).unwrap().ref_count, 2);
    // Hypervisor slots were written and USER forced on guest entries.
    assert_eq!(mem.read_pte(l4, 256), XEN_ENTRY);
    assert_ne!(mem.read_pte(l1, 0) & PTE_USER, 0);
    assert_eq!(mm.pin(&mut mem, l4, 4, D1), Err(Errno::EINVAL), "double pin");
    mm.unpin(&mut mem, l4, D1).unwrap();
    for t in [l4, l3, l2, l1] {
        assert_eq!(mm.frame(t).unwrap().type_count, 0);
        assert_eq!(mm.frame(t).unwrap().ref_count, 1);
    }
    assert_eq!(mm.frame(data).unwrap().ref_count, 1);
}

#[test]
fn page_table_frames_cannot_be_mapped_writable() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let data = mm.domain_alloc(D1).unwrap();
    let [l4, _, l2, l1] = chain(&mut mm, &mut mem, data, false);
    // The L1 maps the L2 table writable: validation must refuse the whole L4.
    mem.write_pte(l1, 1, pte(l2, PTE_PRESENT | PTE_RW));
    let free = mm.free_frames();
    assert_eq!(mm.pin(&mut mem, l4, 4, D1), Err(Errno::EINVAL));
    assert_eq!(mm.frame(l4).unwrap().type_count, 0, "rolled back");
    assert_eq!(mm.frame(l2).unwrap().ref_count, 1);
    assert_eq!(mm.free_frames(), free);
    // Read-only is fine.
    mem.write_pte(l1, 1, pte(l2, PTE_PRESENT));
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    // And a validated table cannot then become writable through mmu_update.
    let ctx = MapCtx { dom: D1, foreign: None };
    assert_eq!(
        mm.update_entry(&mut mem, l1, 2, pte(l4, PTE_PRESENT | PTE_RW), ctx, false),
        Err(Errno::EINVAL)
    );
    mm.update_entry(&mut mem, l1, 2, pte(l4, PTE_PRESENT), ctx, false).unwrap();
    assert_eq!(mm.frame(l4).unwrap().ref_count, 3);
}

#[test]
fn linear_and_large_pages_refused() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let l4 = mm.domain_alloc(D1).unwrap();
    mem.write_pte(l4, 0, pte(l4, PTE_PRESENT));
    assert_eq!(mm.pin(&mut mem, l4, 4, D1), Err(Errno::EINVAL));
    let l2 = mm.domain_alloc(D1).unwrap();
    mem.write_pte(l2, 0, pte(Mfn(20), PTE_PRESENT | super::types::PTE_PSE));
    assert_eq!(mm.pin(&mut mem, l2, 2, D1), Err(Errno::EINVAL));
}

#[test]
fn foreign_hypervisor_and_io_frames() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let theirs = mm.domain_alloc(D2).unwrap();
    let l1 = mm.domain_alloc(D1).unwrap();
    mm.pin(&mut mem, l1, 1, D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    assert_eq!(
        mm.update_entry(&mut mem, l1, 0, pte(theirs, PTE_PRESENT), ctx, false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mm.update_entry(&mut mem, l1, 0, pte(Mfn(3), PTE_PRESENT), ctx, false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mm.update_entry(&mut mem, l1, 0, pte(Mfn(1000), PTE_PRESENT), ctx, false),
        Err(Errno::EPERM)
    );
    // With D2 named as foreign (what dom0 may do) the mapping works and holds a reference.
    let foreign = MapCtx { dom: D1, foreign: Some(D2) };
    mm.update_entry(&mut mem, l1, 0, pte(theirs, PTE_PRESENT | PTE_RW), foreign, false).unwrap();
    assert_eq!(mm.frame(theirs).unwrap().ref_count, 2);
    // D2 gives the frame back: it stays allocated-to-nobody but alive while mapped.
    mm.domain_release(D2, theirs).unwrap();
    assert_eq!(mm.frame(theirs).unwrap().ref_count, 1);
    mm.update_entry(&mut mem, l1, 0, 0, foreign, false).unwrap();
    assert_eq!(mm.frame(theirs).unwrap().owner, DomId::INVALID, "freed on last unmap");
    // A privileged domain maps I/O memory.
    mm.domain_create(DomId(0), 10, true).unwrap();
    let l1p = mm.domain_alloc(DomId(0)).unwrap();
    mm.pin(&mut mem, l1p, 1, DomId(0)).unwrap();
    let p = MapCtx { dom: DomId(0), foreign: None };
    mm.update_entry(&mut mem, l1p, 0, pte(Mfn(1000), PTE_PRESENT | PTE_RW), p, false).unwrap();
    mm.mark_io(Mfn(5));
    mm.update_entry(&mut mem, l1p, 1, pte(Mfn(5), PTE_PRESENT), p, false).unwrap();
    // The same through foreigndom = DOMID_IO, as Xen's dom0 maps device memory.
    let io = MapCtx { dom: DomId(0), foreign: Some(DomId::IO) };
    mm.update_entry(&mut mem, l1p, 2, pte(Mfn(1001), PTE_PRESENT | PTE_RW), io, false).unwrap();
    // DOMID_IO names no RAM, not even the caller's own.
    let own = mm.domain_alloc(DomId(0)).unwrap();
    assert_eq!(
        mm.update_entry(&mut mem, l1p, 3, pte(own, PTE_PRESENT), io, false),
        Err(Errno::EPERM)
    );
    // The device pages the hypervisor drives are nobody's, dom0's neither.
    mm.deny_io(Mfn(0xFEE00));
    let apic = pte(Mfn(0xFEE00), PTE_PRESENT | PTE_RW);
    assert_eq!(mm.update_entry(&mut mem, l1p, 4, apic, io, false), Err(Errno::EPERM));
    assert_eq!(mm.update_entry(&mut mem, l1p, 4, apic, p, false), Err(Errno::EPERM));
}

#[test]
fn hypervisor_slots_are_not_guest_entries() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let l4 = mm.domain_alloc(D1).unwrap();
    let data = mm.domain_alloc(D1).unwrap();
    mem.write_pte(l4, 263, pte(data, PTE_PRESENT | PTE_RW)); // garbage in a Xen slot is overwritten
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    assert_eq!(mem.read_pte(l4, 263), XEN_ENTRY);
    let ctx = MapCtx { dom: D1, foreign: None };
    assert_eq!(mm.update_entry(&mut mem, l4, 260, 0, ctx, false), Err(Errno::EPERM));
    assert_eq!(mm.frame(data).unwrap().ref_count, 1);
}

#[test]
fn in_use_frames_are_not_freed_and_destruction_returns_everything() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let start = mm.free_frames();
    for _ in 0..3 {
        let data = mm.domain_alloc(D1).unwrap();
        let [l4, _, _, l1] = chain(&mut mm, &mut mem, data, true);
        mm.pin(&mut mem, l4, 4, D1).unwrap();
        mm.get_page_and_type(&mut mem, l4, PageType::L4, D1).unwrap(); // a vCPU's CR3
        // Releasing a page-table frame still in use keeps it alive.
        mm.domain_release(D1, l1).unwrap();
        assert_eq!(mm.frame(l1).unwrap().owner, D1);
        assert_eq!(mm.domain_release(D1, l1), Err(Errno::EINVAL), "already released");
        mm.domain_relinquish(&mut mem, D1, &[l4]);
        assert_eq!(mm.domain(D1).unwrap().tot_pages, 0);
        assert_eq!(mm.free_frames(), start);
        assert!(mm.domain_forget(D1));
        mm.domain_create(D1, 100, false).unwrap();
    }
}

#[test]
fn max_pages_and_shared_xen_frames() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    mm.set_max_pages(D2, 2).unwrap();
    mm.domain_alloc(D2).unwrap();
    mm.domain_alloc(D2).unwrap();
    assert_eq!(mm.domain_alloc(D2), Err(Errno::ENOMEM));
    let shared = mm.alloc_xen_frame().unwrap();
    mm.share_xen_frame(shared, D1).unwrap();
    assert_eq!(mm.domain_release(D1, shared), Err(Errno::EPERM));
    let l1 = mm.domain_alloc(D1).unwrap();
    mm.pin(&mut mem, l1, 1, D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    mm.update_entry(&mut mem, l1, 0, pte(shared, PTE_PRESENT | PTE_RW), ctx, false).unwrap();
    mm.domain_relinquish(&mut mem, D1, &[]);
    assert_eq!(mm.frame(shared).unwrap().owner, DomId::INVALID);
}

#[test]
fn plain_writes_to_data_pages_and_preserve_ad() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let page = mm.domain_alloc(D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    mm.update_entry(&mut mem, page, 5, 0xdead_beef, ctx, false).unwrap();
    assert_eq!(mem.read_pte(page, 5), 0xdead_beef);
    let data = mm.domain_alloc(D1).unwrap();
    let l1 = mm.domain_alloc(D1).unwrap();
    mm.pin(&mut mem, l1, 1, D1).unwrap();
    mm.update_entry(&mut mem, l1, 0, pte(data, PTE_PRESENT | 0x60), ctx, false).unwrap();
    mm.update_entry(&mut mem, l1, 0, pte(data, PTE_PRESENT), ctx, true).unwrap();
    assert_eq!(mem.read_pte(l1, 0) & 0x60, 0x60);
    assert_eq!(mm.update_entry(&mut mem, l1, 512, 0, ctx, false), Err(Errno::EINVAL));
    // Bits 52-62 are the guest's own in an L1 entry (as on Xen), refused above.
    let soft = pte(data, PTE_PRESENT) | (1 << 60);
    assert_eq!(mm.update_entry(&mut mem, l1, 1, soft, ctx, false), Ok(()));
    assert_eq!(mem.read_pte(l1, 1) & (1 << 60), 1 << 60);
    let l2 = mm.domain_alloc(D1).unwrap();
    mm.pin(&mut mem, l2, 2, D1).unwrap();
    let l1b = mm.domain_alloc(D1).unwrap();
    assert_eq!(
        mm.update_entry(&mut mem, l2, 0, pte(l1b, PTE_PRESENT) | (1 << 60), ctx, false),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_guest_cannot_free_its_page_tables_or_others_frames() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let data = mm.domain_alloc(D1).unwrap();
    let [l4, _, _, l1] = chain(&mut mm, &mut mem, data, true);
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    assert_eq!(mm.guest_remove_page(D1, l1), Err(Errno::EBUSY));
    assert_eq!(mm.guest_remove_page(D2, data), Err(Errno::EINVAL), "not D2's");
    assert_eq!(mm.guest_remove_page(D1, Mfn(3)), Err(Errno::EINVAL), "hypervisor frame");
    // A mapped data page can be given back: it lives on until the mapping goes.
    mm.guest_remove_page(D1, data).unwrap();
    assert_eq!(mm.frame(data).unwrap().owner, D1);
    mm.unpin(&mut mem, l4, D1).unwrap();
    assert_eq!(mm.frame(data).unwrap().owner, DomId::INVALID, "freed with its last mapping");
    mm.guest_remove_page(D1, l1).unwrap();
}

/// The TLB rule (docs/MEMORY.md): a frame that lost a mapping while no flush followed is
/// flushed out of the TLB before it leaves the free list. This is the sequence of the stale
/// TLB escape: write P, clear its PTE without flushing, give P back, get it back.
#[test]
fn a_frame_unmapped_without_a_flush_is_flushed_out_before_reuse() {
    let (mut mm, tlb) = mm_with_tlb(64);
    let mut mem = FakeMem::default();
    let p = mm.domain_alloc(D1).unwrap();
    let [l4, _, _, l1] = chain(&mut mm, &mut mem, p, true);
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    // The guest clears the PTE; as Xen allows, it does not flush: its TLB may still write P.
    mm.update_entry(&mut mem, l1, 0, 0, ctx, false).unwrap();
    mm.guest_remove_page(D1, p).unwrap();
    assert_eq!(tlb.rule_flushes(), 0, "nothing is flushed while P sits on the free list");
    // The LIFO free list hands P straight back, to the same domain or another.
    let again = mm.domain_alloc(D2).unwrap();
    assert_eq!(again, p);
    assert_eq!(tlb.rule_flushes(), 1, "P left the free list without a flush");
    // A frame that went back after a flush needs none.
    let q = mm.domain_alloc(D1).unwrap();
    mm.update_entry(&mut mem, l1, 1, pte(q, PTE_PRESENT | PTE_RW), ctx, false).unwrap();
    mm.update_entry(&mut mem, l1, 1, 0, ctx, false).unwrap();
    mm.guest_remove_page(D1, q).unwrap();
    tlb.flush();
    assert_eq!(mm.domain_alloc(D1).unwrap(), q);
    assert_eq!(tlb.rule_flushes(), 1, "a needless flush");
}

/// The same rule on the other path: a frame that was mapped writable and lost the mapping
/// without a flush is flushed out before it is validated as a page table (the stale entry
/// would be a writable window on a live L1), whether or not it went through the free list.
#[test]
fn a_frame_unmapped_without_a_flush_is_flushed_out_before_it_becomes_a_page_table() {
    let (mut mm, tlb) = mm_with_tlb(64);
    let mut mem = FakeMem::default();
    let p = mm.domain_alloc(D1).unwrap();
    let [l4, _, _, l1] = chain(&mut mm, &mut mem, p, true);
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    mm.update_entry(&mut mem, l1, 0, 0, ctx, false).unwrap();
    mem.0.remove(&p.0);
    let before = tlb.rule_flushes();
    mm.pin(&mut mem, p, 1, D1).unwrap();
    assert_eq!(tlb.rule_flushes(), before + 1, "P became an L1 without a flush");
    mm.unpin(&mut mem, p, D1).unwrap();
    // Freed and reallocated: flushed once on the way out of the free list, then validating
    // it as a table needs no second flush.
    tlb.flush();
    mm.update_entry(&mut mem, l1, 0, pte(p, PTE_PRESENT | PTE_RW), ctx, false).unwrap();
    mm.update_entry(&mut mem, l1, 0, 0, ctx, false).unwrap();
    mm.guest_remove_page(D1, p).unwrap();
    let before = tlb.rule_flushes();
    assert_eq!(mm.domain_alloc(D1).unwrap(), p);
    mm.pin(&mut mem, p, 1, D1).unwrap();
    assert_eq!(tlb.rule_flushes(), before + 1);
    // Writable data staying writable data is not a new role: no flush on a remap.
    let q = mm.domain_alloc(D1).unwrap();
    mm.update_entry(&mut mem, l1, 2, pte(q, PTE_PRESENT | PTE_RW), ctx, false).unwrap();
    mm.update_entry(&mut mem, l1, 2, 0, ctx, false).unwrap();
    let before = tlb.rule_flushes();
    mm.update_entry(&mut mem, l1, 2, pte(q, PTE_PRESENT | PTE_RW), ctx, false).unwrap();
    assert_eq!(tlb.rule_flushes(), before);
}

/// Guests stop short of the hypervisor's reserve; the hypervisor does not.
#[test]
fn the_hypervisors_reserve_is_not_for_guests() {
    let mut mm = mm(64);
    let free = mm.free_frames();
    mm.set_hv_reserve(free - 2);
    mm.domain_alloc(D1).unwrap();
    mm.alloc_shared_frame().unwrap();
    assert_eq!(mm.domain_alloc(D1), Err(Errno::ENOMEM));
    assert_eq!(mm.alloc_shared_frame(), None);
    assert!(mm.alloc_xen_frame().is_some(), "the hypervisor dips into its reserve");
}

/// A descriptor page (a GDT frame) takes its type only if every descriptor passes, fixed up
/// where Xen fixes up; then it cannot be mapped writable, as a page table cannot.
#[test]
fn descriptor_pages_are_checked_and_read_only() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    let gdt = mm.domain_alloc(D1).unwrap();
    mem.0.remove(&gdt.0);
    mem.write_pte(gdt, 2, 0x00AF_9A00_0000_FFFF); // ring-0 code
    mem.write_pte(gdt, 8, 0x0000_8900_0000_0067); // a TSS
    assert_eq!(
        mm.get_page_and_type(&mut mem, gdt, PageType::SegDesc, D1),
        Err(Errno::EINVAL),
        "a TSS in a guest's GDT"
    );
    assert_eq!(mm.frame(gdt).unwrap().type_count, 0);
    mem.write_pte(gdt, 8, 0);
    mm.get_page_and_type(&mut mem, gdt, PageType::SegDesc, D1).unwrap();
    assert_eq!(mem.read_pte(gdt, 2), 0x00AF_FA00_0000_FFFF, "DPL raised to 3");
    let data = mm.domain_alloc(D1).unwrap();
    let [l4, _, _, l1] = chain(&mut mm, &mut mem, data, true);
    mm.pin(&mut mem, l4, 4, D1).unwrap();
    let ctx = MapCtx { dom: D1, foreign: None };
    assert_eq!(
        mm.update_entry(&mut mem, l1, 1, pte(gdt, PTE_PRESENT | PTE_RW), ctx, false),
        Err(Errno::EINVAL),
        "a writable mapping of a descriptor page"
    );
    mm.update_entry(&mut mem, l1, 1, pte(gdt, PTE_PRESENT), ctx, false).unwrap();
}

#[test]
fn exchange_gives_a_contiguous_run_for_scattered_frames() {
    let (mut mm, mut mem) = (mm(64), FakeMem::default());
    // Take every frame, give back every other one: the free frames are scattered.
    let all: Vec<Mfn> = (0..64).map_while(|_| mm.domain_alloc(D1).ok()).collect();
    for m in all.iter().step_by(2) {
        mm.domain_release(D1, *m).unwrap();
    }
    let mine: Vec<Mfn> = all.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(mm.exchange(D1, &mine[..4], 2), Err(Errno::ENOMEM), "no free run of 4");
    // Give back a block of four (frames 24..28 are all free then) and ask again.
    let run: Vec<Mfn> = mine.iter().filter(|m| (24..28).contains(&m.0)).copied().collect();
    for m in &run {
        mm.domain_release(D1, *m).unwrap();
    }
    let free_before = mm.free_frames();
    let tot_before = mm.domain(D1).unwrap().tot_pages;
    let old: Vec<Mfn> = mine.iter().filter(|m| m.0 >= 40).take(4).copied().collect();
    let base = mm.exchange(D1, &old, 2).unwrap();
    assert_eq!(base, Mfn(24), "the naturally aligned free run");
    for k in 0..4 {
        let f = mm.frame(Mfn(24 + k)).unwrap();
        assert_eq!((f.owner, f.ref_count, f.flags), (D1, 1, flags::ALLOCATED));
    }
    for m in &old {
        assert_eq!(mm.frame(*m).unwrap().owner, DomId::INVALID, "given back");
    }
    assert_eq!(mm.free_frames(), free_before);
    assert_eq!(mm.domain(D1).unwrap().tot_pages, tot_before);
    // The free list is intact: every free frame can still be allocated, and no other.
    let again: Vec<Mfn> = (0..64).map_while(|_| mm.domain_alloc(D1).ok()).collect();
    assert_eq!(again.len() as u64, free_before);
    assert!(again.iter().all(|m| !(24..28).contains(&m.0)));
    // Frames in use are not given up; nothing changes then.
    let l1 = again[0];
    mm.pin(&mut mem, l1, 1, D1).unwrap();
    let busy = [l1, again[1], again[2], again[3]];
    for m in &again[4..] {
        mm.domain_release(D1, *m).unwrap();
    }
    assert_eq!(mm.exchange(D1, &busy, 2), Err(Errno::EINVAL), "a pinned table");
    assert_eq!(mm.exchange(D1, &[again[1], again[1]], 1), Err(Errno::EINVAL), "twice");
    assert_eq!(mm.exchange(D1, &[again[1]], 1), Err(Errno::EINVAL), "wrong count");
    assert_eq!(mm.exchange(D2, &[again[1]], 0), Err(Errno::EINVAL), "not its frame");
    assert_eq!(mm.frame(again[1]).unwrap().owner, D1);
}

#[test]
fn idle_scrubbing_zeroes_each_freed_frame_once_and_allocation_prefers_scrubbed_frames() {
    let (mut mm, tlb) = mm_with_tlb(32);
    let free = mm.free_frames();
    assert_eq!(mm.dirty_frames(), free, "boot memory is not known to be zero");
    // A frame a guest had is freed while a TLB may still map it; scrubbing it flushes first.
    let p = mm.domain_alloc(D1).unwrap();
    mm.stamp(p.0 as usize);
    mm.domain_release(D1, p).unwrap();
    let flushes = tlb.rule_flushes();
    let mut zeroed = Vec::new();
    while mm.scrub_one(|m| zeroed.push(m)) {}
    assert_eq!(zeroed.len() as u64, free, "every free frame once");
    assert!(zeroed.contains(&p));
    assert_eq!(tlb.rule_flushes(), flushes + 1, "the stale TLB went before the zeroing");
    assert_eq!((mm.free_frames(), mm.dirty_frames()), (free, 0));
    // A scrubbed frame is handed out without zeroing it again.
    let mut again = Vec::new();
    let q = mm.domain_alloc_zeroed(D1, |m| again.push(m)).unwrap();
    assert!(again.is_empty(), "{q:?} was scrubbed already");
    assert_eq!(mm.frame(q).unwrap().flags, flags::ALLOCATED, "SCRUBBED goes with the list");
    // Freed, it is dirty again; once the scrubbed frames run out, a dirty one is zeroed.
    mm.domain_release(D1, q).unwrap();
    assert_eq!(mm.dirty_frames(), 1);
    let mut got = Vec::new();
    while let Ok(m) = mm.domain_alloc_zeroed(D1, |m| again.push(m)) {
        got.push(m);
    }
    assert_eq!(got.len() as u64, free);
    assert_eq!(again, [q], "only the dirty frame needed zeroing, and it came last");
    assert_eq!((mm.free_frames(), mm.dirty_frames()), (0, 0));
}

#[test]
fn exchange_takes_runs_from_both_free_lists_scrubbed_and_dirty() {
    let mut mm = mm(64);
    let all: Vec<Mfn> = (0..48).map_while(|_| mm.domain_alloc(D1).ok()).collect();
    // Frames 16..64 are allocated; free 24..28 (dirty) and scrub two of them.
    for m in all.iter().filter(|m| (24..28).contains(&m.0)) {
        mm.domain_release(D1, *m).unwrap();
    }
    assert!(mm.scrub_one(|_| {}) && mm.scrub_one(|_| {}));
    assert_eq!((mm.free_frames(), mm.dirty_frames()), (4, 2));
    let old: Vec<Mfn> = all.iter().filter(|m| m.0 >= 40).take(4).copied().collect();
    assert_eq!(mm.exchange(D1, &old, 2), Ok(Mfn(24)));
    // The four given back are dirty; both lists are intact.
    assert_eq!((mm.free_frames(), mm.dirty_frames()), (4, 4));
    let mut zeroed = 0;
    let back: Vec<Mfn> =
        (0..8).map_while(|_| mm.domain_alloc_zeroed(D1, |_| zeroed += 1).ok()).collect();
    assert_eq!(back.len(), 4);
    assert_eq!(zeroed, 4);
    let mut sorted: Vec<u64> = back.iter().map(|m| m.0).collect();
    sorted.sort();
    let mut want: Vec<u64> = old.iter().map(|m| m.0).collect();
    want.sort();
    assert_eq!(sorted, want);
}
