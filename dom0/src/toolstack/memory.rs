//! The toolstack's reach into memory beyond dom0's boot mapping: a 1 GiB window of dom0's
//! address space (L3 slot 509 under its L4 slot 511, just below the kernel image) where runs of
//! frames are mapped contiguously for as long as a [`Region`] lives: dom0's own spare frames
//! (scratch memory for images and for unpacking bzImages, [`own`]), or another domain's
//! frames (the new domain's memory while it is built, [`foreign`]). Also dom0's ramdisk, which
//! the hypervisor's builder left mapped in the boot mapping ([`ramdisk`]).
//!
//! dom0's spare frames are the pseudo-physical frames past its boot mapping, which nothing
//! maps. The window's page tables are taken from the top of them and kept (zeroed by the
//! hypervisor when dom0 was built, never written as data); scratch frames from the bottom,
//! given back when their region drops. Every mapping is made and removed with `mmu_update`,
//! which validates it like any guest's; removing one flushes this CPU's TLB before the
//! addresses are used again.
//!
//! The one `unsafe` module of the toolstack besides `ctl`: it hands out byte slices over the
//! mappings it made, each owned by exactly one `Region` for its life.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::mmu::{MmuUpdate, MmuextOp};
use hypercall_abi::{DomId, Mfn, PAddr, guest};
use pv_guest::arch::VIRT_BASE;
use pv_guest::memory::{pages, shared};

/// The window: 1 GiB from here (L4 slot 511, L3 slot 509).
const WIN_BASE: u64 = 0xFFFF_FFFF_4000_0000;
const WIN_L3_SLOT: usize = 509;
const WIN_PAGES: u64 = 1 << 18;
/// Table entries: present, writable, user, accessed, dirty (as the builder's).
const TABLE: u64 = 0x67;
/// Data pages: the same, no-execute.
const DATA: u64 = 0x67 | (1 << 63);
/// Page-table updates per `mmu_update` call.
const BATCH: usize = 256;

/// Why memory cannot be had.
pub type Error = String;

struct Space {
    /// The window's L2 and its L1s (Mfn(0): not made yet).
    l2: Mfn,
    l1: Vec<Mfn>,
    /// Free runs of window pages: first page index -> count.
    free_va: BTreeMap<u64, u64>,
    /// Spare pfns: data from `data_next` up, tables from `table_next` down.
    data_next: u64,
    table_next: u64,
    /// Data pfns given back.
    data_free: Vec<u32>,
}

static SPACE: spin::Mutex<Option<Space>> = spin::Mutex::new(None);

/// Applies page-table updates in batches.
fn update(reqs: &[MmuUpdate], foreign: DomId) -> Result<(), Error> {
    for chunk in reqs.chunks(BATCH) {
        #[allow(unsafe_code)]
        // SAFETY: the updates touch only the toolstack's window (entries of its own L1s) or
        // hook a fresh zeroed table into it: nothing Rust code references moves.
        let (r, done) = unsafe { guest::mmu_update(chunk, foreign) };
        r.map_err(|e| format!("mmu_update refused (entry {done} of {}): {e:?}", chunk.len()))?;
    }
    Ok(())
}

fn flush_tlb() {
    #[allow(unsafe_code)]
    // SAFETY: a TLB flush changes no mapping.
    let _ = unsafe { guest::mmuext_op(&[MmuextOp::tlb_flush_local()], DomId::SELF_) };
}

fn entry_addr(table: Mfn, index: usize) -> PAddr {
    PAddr((table.0 << 12) + index as u64 * 8)
}

/// The machine frame of spare pfn `pfn`, if it is still dom0's (not ballooned away).
fn spare_mfn(pfn: u64) -> Option<Mfn> {
    let mfn = shared::p2m_entry(pv_guest::start_info(), pfn)?;
    (shared::m2p_entry(mfn) == pfn).then_some(Mfn(mfn))
}

impl Space {
    fn new() -> Result<Space, Error> {
        let si = pv_guest::start_info();
        let first_spare = (pages::boot_region_end(si) - VIRT_BASE) >> 12;
        let mut s = Space {
            l2: Mfn(0),
            l1: alloc::vec![Mfn(0); 512],
            free_va: BTreeMap::from([(0, WIN_PAGES)]),
            data_next: first_spare,
            table_next: si.nr_pages,
            data_free: Vec::new(),
        };
        // The L3 that maps the kernel image: the bootstrap one, in the boot mapping.
        let l4_va = si.pt_base.0;
        let l3e = shared::read_table_entry(l4_va, 511);
        let l3_mfn = Mfn((l3e & 0x000F_FFFF_FFFF_F000) >> 12);
        let l3_pfn = shared::m2p_entry(l3_mfn.0);
        if l3e & 1 == 0 || l3_pfn >= si.nr_pages {
            return Err("dom0's L4 slot 511 has no L3 in its boot mapping".into());
        }
        if shared::read_table_entry(VIRT_BASE + l3_pfn * 4096, WIN_L3_SLOT) & 1 != 0 {
            return Err("the toolstack's window is already in use".into());
        }
        s.l2 = s.take_table()?;
        update(
            &[MmuUpdate::normal(entry_addr(l3_mfn, WIN_L3_SLOT), (s.l2.0 << 12) | TABLE)],
            DomId::SELF_,
        )?;
        Ok(s)
    }

    fn take_table(&mut self) -> Result<Mfn, Error> {
        while self.table_next > self.data_next {
            self.table_next -= 1;
            if let Some(m) = spare_mfn(self.table_next) {
                return Ok(m);
            }
        }
        Err("dom0 has no spare frame left for the toolstack's page tables (raise dom0_mem)".into())
    }

    fn take_data(&mut self, n: u64) -> Result<Vec<u32>, Error> {
        let mut out = Vec::new();
        out.try_reserve_exact(n as usize).map_err(|_| String::from("dom0's heap is full"))?;
        while (out.len() as u64) < n {
            if let Some(p) = self.data_free.pop() {
                out.push(p);
                continue;
            }
            if self.data_next >= self.table_next {
                self.data_free.extend(out);
                return Err(format!(
                    "dom0 has not {} MiB of spare memory for the toolstack (raise dom0_mem)",
                    n.div_ceil(256)
                ));
            }
            let p = self.data_next;
            self.data_next += 1;
            if spare_mfn(p).is_some() {
                out.push(p as u32);
            }
        }
        Ok(out)
    }

    /// A run of `n` window pages whose L1s exist.
    fn take_va(&mut self, n: u64) -> Result<u64, Error> {
        let (&start, &len) = self
            .free_va
            .iter()
            .find(|&(_, &len)| len >= n)
            .ok_or_else(|| format!("no {n} pages free in the toolstack's window"))?;
        self.free_va.remove(&start);
        if len > n {
            self.free_va.insert(start + n, len - n);
        }
        for table in start / 512..(start + n).div_ceil(512) {
            if self.l1[table as usize].0 == 0 {
                let made = self.take_table().and_then(|l1| {
                    let hook = MmuUpdate::normal(
                        entry_addr(self.l2, table as usize),
                        (l1.0 << 12) | TABLE,
                    );
                    update(&[hook], DomId::SELF_).map(|()| l1)
                });
                match made {
                    Ok(l1) => self.l1[table as usize] = l1,
                    Err(e) => {
                        self.give_va(start, n);
                        return Err(e);
                    }
                }
            }
        }
        Ok(start)
    }

    fn give_va(&mut self, start: u64, n: u64) {
        let mut start = start;
        let mut n = n;
        if let Some((&s, &l)) = self.free_va.range(..start).next_back()
            && s + l == start
        {
            self.free_va.remove(&s);
            start = s;
            n += l;
        }
        if let Some(l) = self.free_va.remove(&(start + n)) {
            n += l;
        }
        self.free_va.insert(start, n);
    }

    fn pte_addr(&self, page: u64) -> PAddr {
        entry_addr(self.l1[(page / 512) as usize], (page % 512) as usize)
    }
}

fn with_space<R>(f: impl FnOnce(&mut Space) -> Result<R, Error>) -> Result<R, Error> {
    let mut g = SPACE.lock();
    if g.is_none() {
        *g = Some(Space::new()?);
    }
    f(g.as_mut().expect("made above"))
}

/// Frames mapped contiguously in the window, unmapped when dropped (and dom0's own frames
/// given back to the spare pool).
pub struct Region {
    first: u64,
    pages: u64,
    own: Vec<u32>,
}

impl Region {
    pub fn va(&self) -> u64 {
        WIN_BASE + self.first * 4096
    }

    pub fn len(&self) -> usize {
        (self.pages * 4096) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    pub fn bytes(&self) -> &[u8] {
        #[allow(unsafe_code)]
        // SAFETY: the region's pages are mapped (readable and writable) for its life, and only
        // this Region reaches them: no other Rust reference to them exists.
        unsafe {
            core::slice::from_raw_parts(self.va() as *const u8, self.len())
        }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        #[allow(unsafe_code)]
        // SAFETY: as in `bytes`; `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(self.va() as *mut u8, self.len())
        }
    }

    /// The region as 64-bit words (page aligned, so aligned).
    pub fn words(&self) -> &[u64] {
        #[allow(unsafe_code)]
        // SAFETY: as in `bytes`; the start is page aligned and any bytes are a valid u64.
        unsafe {
            core::slice::from_raw_parts(self.va() as *const u64, self.len() / 8)
        }
    }

    /// The region as mutable 64-bit words.
    pub fn words_mut(&mut self) -> &mut [u64] {
        #[allow(unsafe_code)]
        // SAFETY: as in `bytes_mut`; the start is page aligned and any bytes are a valid u64.
        unsafe {
            core::slice::from_raw_parts_mut(self.va() as *mut u64, self.len() / 8)
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.pages == 0 {
            return;
        }
        let mut g = SPACE.lock();
        if let Some(s) = g.as_mut() {
            s.release(self);
        }
    }
}

impl Space {
    /// Unmaps `r`, gives its window pages and own frames back, and marks it released.
    fn release(&mut self, r: &mut Region) {
        let clear: Vec<MmuUpdate> =
            (r.first..r.first + r.pages).map(|p| MmuUpdate::normal(self.pte_addr(p), 0)).collect();
        // Clearing our own window's entries cannot be refused; were it, the pages stay out of
        // the pool rather than be handed out twice.
        if update(&clear, DomId::SELF_).is_ok() {
            flush_tlb();
            self.give_va(r.first, r.pages);
            self.data_free.append(&mut r.own);
        }
        r.pages = 0;
    }
}

/// `pages` of dom0's own spare memory, mapped writable (contents unspecified).
pub fn own(pages: u64) -> Result<Region, Error> {
    with_space(|s| {
        let pfns = s.take_data(pages)?;
        let first = match s.take_va(pages) {
            Ok(f) => f,
            Err(e) => {
                s.data_free.extend(pfns);
                return Err(e);
            }
        };
        let reqs: Vec<MmuUpdate> = pfns
            .iter()
            .enumerate()
            .map(|(i, &pfn)| {
                let mfn = spare_mfn(u64::from(pfn)).map_or(0, |m| m.0);
                MmuUpdate::normal(s.pte_addr(first + i as u64), (mfn << 12) | DATA)
            })
            .collect();
        let region = Region { first, pages, own: pfns };
        if let Err(e) = update(&reqs, DomId::SELF_) {
            drop_locked(s, region);
            return Err(e);
        }
        Ok(region)
    })
}

/// `mfns` of domain `dom`, mapped writable in this order (dom0 is privileged: the hypervisor
/// lets it map any frame of a domain it names).
pub fn foreign(dom: DomId, mfns: &[u64]) -> Result<Region, Error> {
    with_space(|s| {
        let pages = mfns.len() as u64;
        let first = s.take_va(pages)?;
        let reqs: Vec<MmuUpdate> = mfns
            .iter()
            .enumerate()
            .map(|(i, &mfn)| MmuUpdate::normal(s.pte_addr(first + i as u64), (mfn << 12) | DATA))
            .collect();
        let region = Region { first, pages, own: Vec::new() };
        if let Err(e) = update(&reqs, dom) {
            drop_locked(s, region);
            return Err(e);
        }
        Ok(region)
    })
}

/// Unmaps a region while the space is already locked (a failed map: entries past the failing
/// one are already empty, and clearing an empty entry is harmless).
/// Its own drop then does nothing, so it does not take the lock again.
fn drop_locked(s: &mut Space, mut region: Region) {
    s.release(&mut region);
}

/// dom0's ramdisk (boot module 1, mapped in the boot mapping by the hypervisor's builder),
/// empty when it has none.
pub fn ramdisk() -> &'static [u8] {
    let si = pv_guest::start_info();
    let (start, len) = (si.mod_start, si.mod_len);
    let end = start.checked_add(len);
    if len == 0 || start < VIRT_BASE || end.is_none_or(|e| e > pages::boot_region_end(si)) {
        return &[];
    }
    #[allow(unsafe_code)]
    // SAFETY: the range lies in the boot mapping (checked above), which stays mapped for the
    // kernel's life; the builder wrote it once and nothing in this kernel writes it.
    unsafe {
        core::slice::from_raw_parts(start as *const u8, len as usize)
    }
}
