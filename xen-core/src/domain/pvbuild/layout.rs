//! Where each start-of-day part goes, computed before anything is written, so a kernel that
//! does not fit in the domain's memory is refused up front.

use core::fmt;

use super::image::KernelImage;

const PAGE: u64 = 4096;
const FOUR_MIB: u64 = 4 << 20;
const MIN_SLACK: u64 = 512 << 10;

/// Why a layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The boot region needs `needed` pages but the domain has only `have`.
    TooSmall { needed: u64, have: u64 },
    /// The boot region would wrap the address space.
    Overflow,
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
        }
    }
}

/// Virtual addresses of each part; ranges are half-open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v_start: u64,
    pub kernel: (u64, u64),
    pub ramdisk: (u64, u64),
    pub p2m: (u64, u64),
    pub start_info: u64,
    pub store: Option<u64>,
    pub console: Option<u64>,
    pub pt: (u64, u64),
    pub nr_pt_frames: u64,
    pub stack_top: u64,
    pub v_end: u64,
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

impl Layout {
    pub fn compute(
        img: &KernelImage,
        nr_pages: u64,
        ramdisk_len: u64,
        with_rings: bool,
    ) -> Result<Layout, LayoutError> {
        let o = LayoutError::Overflow;
        let v_start = img.virt_base;
        let kernel = (img.virt_kstart, page_up(img.virt_kend).ok_or(o)?);
        let ramdisk = (kernel.1, page_up(kernel.1.checked_add(ramdisk_len).ok_or(o)?).ok_or(o)?);
        let p2m_len = nr_pages.checked_mul(8).ok_or(o)?;
        let p2m = (ramdisk.1, page_up(ramdisk.1.checked_add(p2m_len).ok_or(o)?).ok_or(o)?);
        let start_info = p2m.1;
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
        loop {
            let pt_end = pt_start.checked_add(nr_pt * PAGE).ok_or(o)?;
            let stack_top = pt_end + PAGE;
            let mut v_end = stack_top.checked_add(FOUR_MIB - 1).ok_or(o)? & !(FOUR_MIB - 1);
            if v_end - stack_top < MIN_SLACK {
                v_end = v_end.checked_add(FOUR_MIB).ok_or(o)?;
            }
            let need: u64 = tables_needed(v_start, v_end).iter().sum();
            if need <= nr_pt {
                let needed_pages = (v_end - v_start) / PAGE;
                if needed_pages > nr_pages {
                    return Err(LayoutError::TooSmall { needed: needed_pages, have: nr_pages });
                }
                return Ok(Layout {
                    v_start,
                    kernel,
                    ramdisk,
                    p2m,
                    start_info,
                    store,
                    console,
                    pt: (pt_start, pt_end),
                    nr_pt_frames: nr_pt,
                    stack_top,
                    v_end,
                });
            }
            nr_pt = need;
        }
    }
}
