//! The PV domain builder: lays out a new domain's start-of-day memory the way Xen does and
//! fills it in. It works on pseudo-physical frames through [`GuestMemory`], knowing nothing
//! of the hypervisor, so the same code builds dom0 inside the hypervisor and domUs inside
//! dom0's toolstack (which reaches the new domain's frames through foreign mappings).
//!
//! Layout from `virt_base` up, every part page aligned and mapped 1:1 from pfn 0: the kernel,
//! the ramdisk, the P2M list (one u64 MFN per pfn), `start_info`, the XenStore and console
//! pages (domUs only), the bootstrap page tables (mapped read-only), one stack page, then at
//! least 512 KiB of slack, the whole rounded up to 4 MiB. A kernel with MOD_START_PFN gets
//! its ramdisk after that, unmapped, and one with INIT_P2M its P2M list after that, mapped
//! at the address it asked for by tables of its own (Xen's choice for Linux: `layout`).
//!
//! A Linux bzImage is unpacked to its ELF first (`bzimage`), into memory the caller finds.
//!
//! A crate of its own, hardware-free and host-tested (`cargo test -p pvbuild`), so the
//! hypervisor (dom0) and dom0's toolstack (every domU) run the same code.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod bzimage;
pub mod image;
mod layout;

use hypercall_abi::start_info::{ConsoleDomU, StartInfo, StartInfoConsole};
use hypercall_abi::{EvtchnPort, Mfn, PAddr, VAddr};
use zerocopy::IntoBytes;

pub use image::{ImageError, KernelImage};
pub use layout::{Layout, LayoutError, Tables};

/// PTE flags the builder uses: data pages present|rw|user|accessed; bootstrap page-table
/// frames the same without rw (a guest may never write its tables directly); table entries
/// present|rw|user|accessed|dirty (0x67).
const L1_DATA: u64 = 0x27;
const L1_TABLE: u64 = 0x25;
const UPPER: u64 = 0x67;

/// The new domain's memory, by pseudo-physical frame. Frames start zeroed.
pub trait GuestMemory {
    /// Number of pseudo-physical frames.
    fn nr_pages(&self) -> u64;
    /// Machine frame behind `pfn`.
    fn mfn(&self, pfn: u64) -> Mfn;
    /// Writes `bytes` at `offset` within `pfn` (`offset + len <= 4096`).
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]);
}

/// What the caller decides about the domain.
#[derive(Clone, Debug)]
pub struct BuildParams<'a> {
    pub cmdline: &'a str,
    /// `SIF_*` flags (dom0: PRIVILEGED | INITDOMAIN).
    pub flags: u32,
    /// Machine address of the domain's shared_info page.
    pub shared_info: PAddr,
    /// Event channels for the XenStore and console rings; `Some` gives the domain those pages.
    pub store_evtchn: Option<EvtchnPort>,
    pub console_evtchn: Option<EvtchnPort>,
}

/// Where the built domain starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub layout: Layout,
    pub entry: u64,
    pub stack_top: u64,
    pub start_info: u64,
    /// The bootstrap L4 (becomes the vCPU's CR3).
    pub l4: Mfn,
    pub store_mfn: Option<Mfn>,
    pub console_mfn: Option<Mfn>,
}

/// Builds a domain: loads `kernel` (parsed as `img`) and `ramdisk`, writes the P2M list,
/// start_info, hypercall page and bootstrap page tables.
pub fn build(
    mem: &mut impl GuestMemory,
    img: &KernelImage,
    kernel: &[u8],
    ramdisk: &[u8],
    params: &BuildParams<'_>,
) -> Result<Built, LayoutError> {
    let with_rings = params.store_evtchn.is_some() || params.console_evtchn.is_some();
    let lay = Layout::compute(img, mem.nr_pages(), ramdisk.len() as u64, with_rings)?;

    for seg in &img.segments {
        let va = seg.paddr.wrapping_add(img.virt_offset);
        let src = &kernel[seg.offset as usize..(seg.offset + seg.filesz) as usize];
        write_pfns(mem, (va - lay.v_start) / 4096, (va % 4096) as usize, src);
    }
    write_pfns(mem, lay.ramdisk_pfns.0, 0, ramdisk);
    // The P2M list, a page of entries at a time: the whole list is 8 bytes per page of the
    // domain, more than a hypervisor heap should hold at once.
    let mut chunk = [0u64; 512];
    let mut pfn = 0;
    while pfn < mem.nr_pages() {
        let n = (mem.nr_pages() - pfn).min(512) as usize;
        for (i, e) in chunk[..n].iter_mut().enumerate() {
            *e = mem.mfn(pfn + i as u64).0;
        }
        write_pfns(mem, lay.p2m_pfns.0 + pfn / 512, 0, chunk[..n].as_bytes());
        pfn += n as u64;
    }
    if let Some(hp) = img.hypercall_page {
        let mut page = [0u8; 4096];
        hypercall_abi::hypercall_page::fill_page(&mut page);
        write_pfns(mem, (hp - lay.v_start) / 4096, 0, &page);
    }

    let l4 = (lay.pt.0 - lay.v_start) >> 12;
    let pt_pfns = l4..(lay.pt.1 - lay.v_start) >> 12;
    map_range(mem, l4, &lay.tables, (lay.v_start, lay.v_end), 0, &pt_pfns);
    if let Some(t) = &lay.p2m_tables {
        map_range(mem, l4, t, lay.p2m, lay.p2m_pfns.0, &(0..0));
    }

    let pfn_of = |va: u64| (va - lay.v_start) >> 12;
    let store_mfn = lay.store.map(|va| mem.mfn(pfn_of(va)));
    let console_mfn = lay.console.map(|va| mem.mfn(pfn_of(va)));
    let mut si = StartInfo {
        magic: StartInfo::magic_bytes(),
        nr_pages: mem.nr_pages(),
        shared_info: params.shared_info,
        flags: params.flags,
        _pad0: 0,
        store_mfn: store_mfn.unwrap_or(Mfn(0)),
        store_evtchn: params.store_evtchn.unwrap_or(EvtchnPort(0)),
        _pad1: 0,
        console: StartInfoConsole::default(),
        pt_base: VAddr(lay.pt.0),
        nr_pt_frames: lay.nr_pt_frames,
        mfn_list: VAddr(lay.p2m.0),
        mod_start: 0,
        mod_len: ramdisk.len() as u64,
        cmd_line: [0; hypercall_abi::start_info::MAX_GUEST_CMDLINE],
        first_p2m_pfn: lay.p2m_part.0,
        nr_p2m_frames: lay.p2m_part.1,
    };
    if lay.ramdisk_unmapped {
        si.mod_start = lay.ramdisk_pfns.0;
        si.flags |= hypercall_abi::start_info::SIF_MOD_START_PFN;
    } else if !ramdisk.is_empty() {
        si.mod_start = lay.ramdisk.0;
    }
    if let (Some(mfn), Some(port)) = (console_mfn, params.console_evtchn) {
        si.console = StartInfoConsole::from_domu(ConsoleDomU { mfn, evtchn: port, _pad: 0 });
    }
    si.set_cmdline(params.cmdline.as_bytes());
    write_pfns(mem, pfn_of(lay.start_info), 0, si.as_bytes());

    Ok(Built {
        entry: img.entry,
        stack_top: lay.stack_top,
        start_info: lay.start_info,
        l4: mem.mfn(l4),
        store_mfn,
        console_mfn,
        layout: lay,
    })
}

/// What the builder made, where, in one line (`kernel ..., ramdisk ..., P2M ..., start_info
/// ..., page tables ..., stack top ..., mapped to ..., N pages used, entry ...`): the line a
/// bring-up reads first.
pub fn describe(b: &Built) -> alloc::string::String {
    use alloc::format;
    let l = &b.layout;
    let ramdisk = match (l.ramdisk_pfns.1, l.ramdisk_unmapped) {
        (0, _) => alloc::string::String::from("none"),
        (n, true) => format!("pfn {:#x} (+{n}, unmapped)", l.ramdisk_pfns.0),
        (_, false) => format!("{:#x}-{:#x}", l.ramdisk.0, l.ramdisk.1),
    };
    format!(
        "kernel {:#x}-{:#x}, ramdisk {ramdisk}, P2M {:#x}-{:#x} (pfn {:#x}+{}), start_info {:#x}, \
         page tables {:#x}-{:#x}, stack top {:#x}, mapped to {:#x}, {} pages used, entry {:#x}",
        l.kernel.0,
        l.kernel.1,
        l.p2m.0,
        l.p2m.1,
        l.p2m_pfns.0,
        l.p2m_part.1.max(l.p2m_pfns.1),
        l.start_info,
        l.pt.0,
        l.pt.1,
        l.stack_top,
        l.v_end,
        l.nr_used,
        b.entry
    )
}

/// Copies `bytes` to the frames from `pfn` on, starting `offset` bytes into the first.
fn write_pfns(mem: &mut impl GuestMemory, pfn: u64, offset: usize, bytes: &[u8]) {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = offset + done;
        let off = at % 4096;
        let n = (4096 - off).min(bytes.len() - done);
        mem.write(pfn + (at / 4096) as u64, off, &bytes[done..done + n]);
        done += n;
    }
}

/// Writes the tables mapping `[va.0, va.1)` onto the frames from `first_pfn` on, below the
/// L4 at pfn `l4`; frames in `read_only` (the bootstrap tables) are mapped without write
/// access. The range's L3s, L2s and L1s are at `t`, counted from the first one covering it.
fn map_range(
    mem: &mut impl GuestMemory,
    l4: u64,
    t: &layout::Tables,
    va: (u64, u64),
    first_pfn: u64,
    read_only: &core::ops::Range<u64>,
) {
    // First pfn of the level-L tables at index L - 1.
    let first = [t.l1, t.l2, t.l3, l4];
    // Which level-`level` table (counted from the first) covers `v`.
    let table_no = |v: u64, level: u32| {
        if level == 4 {
            return 0;
        }
        let shift = 12 + 9 * level;
        (v >> shift) - (va.0 >> shift)
    };
    for v in (va.0..va.1).step_by(4096) {
        for level in 1..=4u32 {
            let index = ((v >> (12 + 9 * (level - 1))) & 511) as usize;
            let entry = if level == 1 {
                let pfn = first_pfn + (v - va.0) / 4096;
                let flags = if read_only.contains(&pfn) { L1_TABLE } else { L1_DATA };
                (mem.mfn(pfn).0 << 12) | flags
            } else {
                let child = first[level as usize - 2] + table_no(v, level - 1);
                (mem.mfn(child).0 << 12) | UPPER
            };
            let table = first[level as usize - 1] + table_no(v, level);
            mem.write(table, index * 8, &entry.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests;
