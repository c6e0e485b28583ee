//! Where each start-of-day part goes, computed before anything is written, so a kernel that
//! does not fit in the domain's memory is refused up front.
//!
//! Pseudo-physical frames, in order (Xen's: `public/xen.h` and its domU builder):
//! 1. the initial mapping, pfn 0 at `virt_base`: kernel, ramdisk (unless the kernel takes it
//!    by pfn), P2M list (unless the kernel asked for it at INIT_P2M), start_info, XenStore and
//!    console pages (domUs), the bootstrap page tables (L4, L3s, L2s, L1s: Linux frees the
//!    first three kinds by trimming the ends of this range), the boot stack, then at least
//!    512 KiB of slack, the whole rounded up to 4 MiB;
//! 2. a ramdisk given by pfn (`SIF_MOD_START_PFN`), unmapped;
//! 3. with INIT_P2M: the P2M list, then the L3s, L2s and L1s that map it at INIT_P2M
//!    (`first_p2m_pfn`/`nr_p2m_frames` cover both; the L4 entries are in the bootstrap L4).

use core::fmt;

use super::image::KernelImage;

const PAGE: u64 = 4096;
const FOUR_MIB: u64 = 4 << 20;
const MIN_SLACK: u64 = 512 << 10;
/// The hypervisor's L4 slots, which no guest mapping may use.
const XEN_L4_SLOTS: core::ops::Range<u64> = 256..272;

/// Why a layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The boot layout needs `needed` pages but the domain has only `have`.
    TooSmall { needed: u64, have: u64 },
    /// The boot region would wrap the address space.
    Overflow,
    /// The INIT_P2M mapping would share an L4 slot with the initial mapping or use the
    /// hypervisor's.
    P2mPlacement,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::TooSmall { needed, have } => {
                write!(
                    f,
                    "domain memory too small for its boot layout: needs {needed} pages, has {have}"
                )
            }
            LayoutError::Overflow => write!(f, "boot layout overflows the address space"),
            LayoutError::P2mPlacement => write!(
                f,
                "INIT_P2M address collides with the initial mapping or the hypervisor's slots"
            ),
        }
    }
}

/// Page-table frames of one mapping, by level: the first pfn of its L1s, L2s and L3s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub l1: u64,
    pub l2: u64,
    pub l3: u64,
}

/// Where each part is; virtual ranges are half-open, pfn ranges are (first, count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v_start: u64,
    pub kernel: (u64, u64),
    /// The ramdisk's virtual range when it is mapped (empty otherwise).
    pub ramdisk: (u64, u64),
    /// The ramdisk's frames, mapped or not.
    pub ramdisk_pfns: (u64, u64),
    /// Whether the ramdisk is outside the initial mapping (given by pfn).
    pub ramdisk_unmapped: bool,
    /// The P2M list's virtual range (in the initial mapping, or at INIT_P2M).
    pub p2m: (u64, u64),
    /// The P2M list's frames.
    pub p2m_pfns: (u64, u64),
    /// With INIT_P2M: the tables mapping the list there, and every frame of that part
    /// (list and tables: start_info's `first_p2m_pfn`, `nr_p2m_frames`).
    pub p2m_tables: Option<Tables>,
    pub p2m_part: (u64, u64),
    pub start_info: u64,
    pub store: Option<u64>,
    pub console: Option<u64>,
    pub pt: (u64, u64),
    pub nr_pt_frames: u64,
    /// The initial mapping's tables (the L4 is the first frame of `pt`).
    pub tables: Tables,
    pub stack_top: u64,
    pub v_end: u64,
    /// Frames the layout uses, from pfn 0.
    pub nr_used: u64,
}

fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE - 1).map(|x| x & !(PAGE - 1))
}

/// Page-table frames needed per level (index 0 = L1 ... 3 = L4) to map `[start, end)`.
pub fn tables_needed(start: u64, end: u64) -> [u64; 4] {
    let mut n = [0u64; 4];
    for (i, slot) in n.iter_mut().enumerate() {
        let shift = 12 + 9 * (i as u32 + 1);
        *slot = ((end - 1) >> shift) - (start >> shift) + 1;
    }
    n
}

/// L4 slots `[start, end)` touches.
fn l4_slots(start: u64, end: u64) -> core::ops::RangeInclusive<u64> {
    ((start >> 39) & 511)..=(((end - 1) >> 39) & 511)
}

impl Layout {
    pub fn compute(
        img: &KernelImage,
        nr_pages: u64,
        ramdisk_len: u64,
        with_rings: bool,
    ) -> Result<Layout, LayoutError> {
        let o = LayoutError::Overflow;
        let v_start = img.virt_base;
        let pfn_of = |va: u64| (va - v_start) / PAGE;
        let kernel = (img.virt_kstart, page_up(img.virt_kend).ok_or(o)?);
        let ramdisk_pages = page_up(ramdisk_len).ok_or(o)? / PAGE;
        let ramdisk_unmapped = img.mod_start_pfn && ramdisk_len > 0;
        let ramdisk = if ramdisk_unmapped {
            (kernel.1, kernel.1)
        } else {
            (kernel.1, kernel.1.checked_add(ramdisk_pages * PAGE).ok_or(o)?)
        };
        let p2m_len = page_up(nr_pages.checked_mul(8).ok_or(o)?).ok_or(o)?;
        let p2m_mapped = if img.init_p2m.is_some() {
            (ramdisk.1, ramdisk.1)
        } else {
            (ramdisk.1, ramdisk.1.checked_add(p2m_len).ok_or(o)?)
        };
        let start_info = p2m_mapped.1;
        let mut next = start_info + PAGE;
        let (store, console) = if with_rings {
            next += 2 * PAGE;
            (Some(start_info + PAGE), Some(start_info + 2 * PAGE))
        } else {
            (None, None)
        };
        let pt_start = next;
        // The tables map the whole region, which includes the tables: grow until they fit.
        let mut nr_pt = 1u64;
        let (pt_end, stack_top, v_end, counts) = loop {
            let pt_end = pt_start.checked_add(nr_pt * PAGE).ok_or(o)?;
            let stack_top = pt_end + PAGE;
            let mut v_end = stack_top.checked_add(FOUR_MIB - 1).ok_or(o)? & !(FOUR_MIB - 1);
            if v_end - stack_top < MIN_SLACK {
                v_end = v_end.checked_add(FOUR_MIB).ok_or(o)?;
            }
            let counts = tables_needed(v_start, v_end);
            let need: u64 = counts.iter().sum();
            if need <= nr_pt {
                break (pt_end, stack_top, v_end, counts);
            }
            nr_pt = need;
        };
        // L4 first, then L3s, L2s, L1s.
        let l4 = pfn_of(pt_start);
        let tables =
            Tables { l3: l4 + 1, l2: l4 + 1 + counts[2], l1: l4 + 1 + counts[2] + counts[1] };

        let mut next_pfn = pfn_of(v_end);
        let ramdisk_pfns = if ramdisk_unmapped {
            next_pfn += ramdisk_pages;
            (next_pfn - ramdisk_pages, ramdisk_pages)
        } else {
            (pfn_of(ramdisk.0), ramdisk_pages)
        };
        let (p2m, p2m_pfns, p2m_tables, p2m_part) = match img.init_p2m {
            None => (p2m_mapped, (pfn_of(p2m_mapped.0), p2m_len / PAGE), None, (0, 0)),
            Some(base) => {
                let end = base.checked_add(p2m_len).ok_or(o)?;
                // Its own L3s (so its own L4 slots), never the hypervisor's.
                let own = l4_slots(base, end);
                let boot = l4_slots(v_start, v_end);
                let canonical = end <= 1 << 47 || base >= 0xFFFF_8000_0000_0000;
                if !canonical
                    || own.start() <= boot.end() && boot.start() <= own.end()
                    || own.clone().any(|s| XEN_L4_SLOTS.contains(&s))
                {
                    return Err(LayoutError::P2mPlacement);
                }
                let [n1, n2, n3, _] = tables_needed(base, end);
                let first = next_pfn;
                let list = p2m_len / PAGE;
                let t =
                    Tables { l3: first + list, l2: first + list + n3, l1: first + list + n3 + n2 };
                let part = (first, list + n3 + n2 + n1);
                next_pfn += part.1;
                ((base, end), (first, list), Some(t), part)
            }
        };
        if next_pfn > nr_pages {
            return Err(LayoutError::TooSmall { needed: next_pfn, have: nr_pages });
        }
        Ok(Layout {
            v_start,
            kernel,
            ramdisk,
            ramdisk_pfns,
            ramdisk_unmapped,
            p2m,
            p2m_pfns,
            p2m_tables,
            p2m_part,
            start_info,
            store,
            console,
            pt: (pt_start, pt_end),
            nr_pt_frames: nr_pt,
            tables,
            stack_top,
            v_end,
            nr_used: next_pfn,
        })
    }
}
