//! Physical memory at boot: the usable RAM ranges from the firmware's map, minus what is
//! already in use (the first MiB, the hypervisor image, the boot modules), and a bump
//! allocator over what is left that hands out the hypervisor's own tables before the frame
//! allocator exists. Whatever it does not hand out becomes free frames.

use alloc::vec::Vec;

pub const PAGE_SIZE: u64 = 4096;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Usable RAM as page-aligned ranges, with holes cut for everything reserved.
#[derive(Clone, Debug, Default)]
pub struct FreeRanges {
    ranges: Vec<Range>,
}

impl FreeRanges {
    /// Starts from the firmware's usable regions (page-aligned inward; overlaps merged).
    pub fn from_ram(ram: impl IntoIterator<Item = Range>) -> Self {
        let mut ranges: Vec<Range> = ram
            .into_iter()
            .map(|r| Range {
                start: r.start.div_ceil(PAGE_SIZE) * PAGE_SIZE,
                end: r.end / PAGE_SIZE * PAGE_SIZE,
            })
            .filter(|r| !r.is_empty())
            .collect();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        Self { ranges: merged }
    }

    /// Removes `[start, end)` (widened to whole pages) from the free ranges.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let start = start / PAGE_SIZE * PAGE_SIZE;
        let end = end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for r in &self.ranges {
            if r.end <= start || r.start >= end {
                out.push(*r);
                continue;
            }
            if r.start < start {
                out.push(Range { start: r.start, end: start });
            }
            if r.end > end {
                out.push(Range { start: end, end: r.end });
            }
        }
        self.ranges = out;
    }

    /// Takes `len` bytes, aligned to `align` (a power of two), from the highest free range
    /// that has room below `limit`. Taking from the top keeps low memory for guests and DMA.
    pub fn take(&mut self, len: u64, align: u64, limit: u64) -> Option<u64> {
        let len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        for i in (0..self.ranges.len()).rev() {
            let r = self.ranges[i];
            let top = r.end.min(limit);
            let Some(start) = top.checked_sub(len).map(|s| s & !(align - 1)) else { continue };
            if start < r.start || top <= r.start {
                continue;
            }
            self.reserve(start, start + len);
            return Some(start);
        }
        None
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Total free bytes.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(Range::len).sum()
    }

    /// One past the highest free byte.
    pub fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.end)
    }
}

/// The first MiB, I/O and firmware memory for PCs whatever the map says there (as on Xen).
pub const LEGACY_IO_END: u64 = 1 << 20;

/// The frames below `end` that are I/O memory rather than RAM, as page-aligned ranges: the
/// first MiB and every page the firmware's map does not give as usable RAM (holes, reserved
/// and ACPI ranges). dom0 may map them as I/O memory; nobody may own them.
pub fn io_ranges(ram: &FreeRanges, end: u64) -> Vec<Range> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in ram.ranges().iter().filter(|r| r.start < end) {
        if r.start > at {
            out.push(Range { start: at, end: r.start });
        }
        at = at.max(r.end);
    }
    if at < end {
        out.push(Range { start: at, end });
    }
    // The first MiB joins whatever I/O range starts in it.
    let legacy = Range { start: 0, end: LEGACY_IO_END.min(end) };
    let mut merged = alloc::vec![legacy];
    for r in out {
        let last = merged.last_mut().expect("starts with the legacy range");
        if r.start <= last.end {
            last.end = last.end.max(r.end);
        } else {
            merged.push(r);
        }
    }
    merged.retain(|r| !r.is_empty());
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn align_merge_and_reserve() {
        let mut f =
            FreeRanges::from_ram([r(0x100000, 0x800000), r(10, 0x9f000), r(0x800000, 0x900001)]);
        assert_eq!(f.ranges(), &[r(0x1000, 0x9f000), r(0x100000, 0x900000)]);
        f.reserve(0x200000, 0x200001);
        assert_eq!(f.ranges(), &[r(0x1000, 0x9f000), r(0x100000, 0x200000), r(0x201000, 0x900000)]);
        f.reserve(0, 0x100000);
        assert_eq!(f.ranges()[0], r(0x100000, 0x200000));
    }

    #[test]
    fn io_is_the_first_mib_and_every_non_ram_page_below_the_end() {
        // QEMU's map: low RAM to 0x9fc00, RAM from 1 MiB to 0x3ffe0000, reserved above.
        let ram = FreeRanges::from_ram([r(0, 0x9fc00), r(0x100000, 0x3ffe0000)]);
        assert_eq!(io_ranges(&ram, 0x3ffe0000), [r(0, 0x100000)]);
        // A hole in the middle and a tail past the last RAM range.
        let ram = FreeRanges::from_ram([r(0x100000, 0x200000), r(0x300000, 0x400000)]);
        assert_eq!(
            io_ranges(&ram, 0x500000),
            [r(0, 0x100000), r(0x200000, 0x300000), r(0x400000, 0x500000)]
        );
        // Nothing past `end`, and a machine smaller than a MiB stays inside its frames.
        assert_eq!(io_ranges(&ram, 0x80000), [r(0, 0x80000)]);
    }

    #[test]
    fn take_from_top_with_alignment_and_limit() {
        let mut f = FreeRanges::from_ram([r(0x100000, 0x1000000)]);
        let a = f.take(0x3000, 0x200000, u64::MAX).unwrap();
        assert_eq!(a, 0xE00000);
        assert_eq!(a % 0x200000, 0);
        let b = f.take(0x1000, 0x1000, 0x300000).unwrap();
        assert_eq!(b, 0x2FF000);
        assert!(f.take(0x10000000, 0x1000, u64::MAX).is_none());
        assert_eq!(f.total(), 0xF00000 - 0x4000);
    }
}
