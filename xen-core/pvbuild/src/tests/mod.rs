//! Builder tests over a synthetic kernel image: the image parser's refusals, and a full build
//! checked by walking the page tables it wrote. `bzimage` wraps such images as Linux does;
//! `linux` gives one Linux's notes and checks the layout Linux gets.

mod bzimage;
mod linux;

use super::*;
use hypercall_abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};
use zerocopy::FromBytes;

const BASE: u64 = 0xFFFF_FFFF_8000_0000;

/// An ELF64 x86_64 executable: one PT_LOAD of `code` (+`bss` zero bytes) at BASE, one PT_NOTE
/// holding `notes`.
fn elf(code: &[u8], bss: u64, notes: &[(u32, Vec<u8>)], e_type: u16) -> Vec<u8> {
    elf_at(code, bss, notes, e_type, BASE, BASE)
}

/// [`elf`] with the segment's physical and virtual addresses (and the entry) given.
fn elf_at(
    code: &[u8],
    bss: u64,
    notes: &[(u32, Vec<u8>)],
    e_type: u16,
    paddr: u64,
    vaddr: u64,
) -> Vec<u8> {
    let mut note_bytes = Vec::new();
    for (kind, desc) in notes {
        note_bytes.extend_from_slice(&4u32.to_le_bytes());
        note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&kind.to_le_bytes());
        note_bytes.extend_from_slice(b"Xen\0");
        note_bytes.extend_from_slice(desc);
        while note_bytes.len() % 4 != 0 {
            note_bytes.push(0);
        }
    }
    let phoff = 64u64;
    let code_off = 0x1000u64;
    let note_off = code_off + code.len() as u64;
    let mut f = vec![0u8; note_off as usize + note_bytes.len()];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&e_type.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&vaddr.to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes());
    let ph =
        |f: &mut Vec<u8>, at: usize, ty: u32, off: u64, addr: (u64, u64), sizes: (u64, u64)| {
            f[at..at + 4].copy_from_slice(&ty.to_le_bytes());
            f[at + 4..at + 8].copy_from_slice(&7u32.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&addr.1.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&addr.0.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&sizes.0.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&sizes.1.to_le_bytes());
        };
    let code_len = code.len() as u64;
    ph(&mut f, 64, 1, code_off, (paddr, vaddr), (code_len, code_len + bss));
    let notes_len = note_bytes.len() as u64;
    ph(&mut f, 120, 4, note_off, (0, 0), (notes_len, notes_len));
    f[code_off as usize..note_off as usize].copy_from_slice(code);
    f[note_off as usize..].copy_from_slice(&note_bytes);
    f
}

fn good_notes() -> Vec<(u32, Vec<u8>)> {
    vec![
        (5, b"xen-3.0\0".to_vec()),
        (8, b"generic\0".to_vec()),
        (3, BASE.to_le_bytes().to_vec()),
        (4, BASE.to_le_bytes().to_vec()),
        (1, (BASE + 0x10).to_le_bytes().to_vec()),
        (2, (BASE + 0x1000).to_le_bytes().to_vec()),
    ]
}

#[test]
fn parses_notes_and_segments() {
    let code = vec![0x90u8; 0x2000];
    let img = image::parse(&elf(&code, 0x3000, &good_notes(), 2)).unwrap();
    assert_eq!(img.entry, BASE + 0x10);
    assert_eq!(img.virt_base, BASE);
    assert_eq!((img.virt_kstart, img.virt_kend), (BASE, BASE + 0x5000));
    assert_eq!(img.hypercall_page, Some(BASE + 0x1000));
}

#[test]
fn refuses_bad_images_with_a_reason() {
    let code = vec![0x90u8; 0x2000];
    assert!(matches!(image::parse(b"not an elf at all, just text"), Err(ImageError::NotElf(_))));
    let full = elf(&code, 0, &good_notes(), 2);
    assert!(image::parse(&full[..0x1800]).is_err(), "truncated");
    assert_eq!(image::parse(&elf(&code, 0, &good_notes(), 3)), Err(ImageError::NotExecutable));
    assert_eq!(image::parse(&elf(&code, 0, &[], 2)), Err(ImageError::NoXenNotes));
    let mut n = good_notes();
    n[0] = (5, b"xen-2.0\0".to_vec());
    assert_eq!(image::parse(&elf(&code, 0, &n, 2)), Err(ImageError::UnsupportedXenVersion));
    let mut n = good_notes();
    n[4] = (1, (BASE + 0x900000).to_le_bytes().to_vec());
    assert_eq!(image::parse(&elf(&code, 0, &n, 2)), Err(ImageError::BadAddress("entry point")));
    let mut n = good_notes();
    n.push((10, b"!auto_translated_physmap\0".to_vec()));
    assert!(matches!(image::parse(&elf(&code, 0, &n, 2)), Err(ImageError::RequiredFeature(_))));
    let mut n = good_notes();
    n[2] = (3, vec![1, 2, 3]);
    assert_eq!(image::parse(&elf(&code, 0, &n, 2)), Err(ImageError::BadNote("VIRT_BASE")));
    // A segment whose file range runs past the end.
    let mut bad = full.clone();
    bad[64 + 32..64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes());
    assert_eq!(image::parse(&bad), Err(ImageError::BadSegment(0)));
}

/// Guest memory where pfn p is backed by mfn 1000 + (nr - 1 - p): reversed, so a pfn/mfn mix-up
/// shows. Sparse: a page exists once written (a Linux-sized domain is 256 MiB).
struct Fake {
    nr: u64,
    pages: std::collections::HashMap<u64, Box<[u8; 4096]>>,
}

const ZERO_PAGE: [u8; 4096] = [0; 4096];

impl Fake {
    fn new(nr: u64) -> Fake {
        Fake { nr, pages: Default::default() }
    }
    fn page(&self, pfn: u64) -> &[u8; 4096] {
        assert!(pfn < self.nr, "pfn {pfn} past the end");
        self.pages.get(&pfn).map_or(&ZERO_PAGE, |p| p)
    }
    fn mfn_to_pfn(&self, mfn: u64) -> u64 {
        self.nr - 1 - (mfn - 1000)
    }
    fn read_u64(&self, mfn: u64, index: usize) -> u64 {
        let p = self.page(self.mfn_to_pfn(mfn));
        u64::from_le_bytes(p[index * 8..index * 8 + 8].try_into().unwrap())
    }
    /// Walks the tables from `l4` (mfn) and returns (pfn, pte flags) for `va`.
    fn walk(&self, l4: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = l4;
        for level in (1..=4).rev() {
            let e = self.read_u64(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
            if e & 1 == 0 {
                return None;
            }
            if level == 1 {
                return Some((self.mfn_to_pfn((e >> 12) & 0xFF_FFFF_FFFF), e & 0xFFF));
            }
            table = (e >> 12) & 0xFF_FFFF_FFFF;
        }
        None
    }
}

impl GuestMemory for Fake {
    fn nr_pages(&self) -> u64 {
        self.nr
    }
    fn mfn(&self, pfn: u64) -> Mfn {
        assert!(pfn < self.nr, "pfn {pfn} past the end");
        Mfn(1000 + self.nr_pages() - 1 - pfn)
    }
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        assert!(pfn < self.nr, "pfn {pfn} past the end");
        let page = self.pages.entry(pfn).or_insert_with(|| Box::new([0; 4096]));
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

#[test]
fn builds_the_start_of_day_layout() {
    let mut code = vec![0x90u8; 0x2000];
    code[0x10] = 0xF4;
    let img = image::parse(&elf(&code, 0x3000, &good_notes(), 2)).unwrap();
    let mut mem = Fake::new(2048);
    let ramdisk = vec![0xAB; 5000];
    let params = BuildParams {
        cmdline: "console=hvc0 hello",
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        shared_info: PAddr(0x5000),
        store_evtchn: Some(EvtchnPort(1)),
        console_evtchn: Some(EvtchnPort(2)),
    };
    let b =
        build(&mut mem, &img, &elf(&code, 0x3000, &good_notes(), 2), &ramdisk, &params).unwrap();
    let lay = b.layout;
    assert_eq!(lay.ramdisk.0, BASE + 0x5000);
    assert_eq!(lay.v_end % (4 << 20), 0);
    assert!(lay.v_end - lay.stack_top >= 512 << 10);
    let l4 = b.l4.0;
    // Kernel bytes, ramdisk and the hypercall page are where the page tables say.
    let (pfn, flags) = mem.walk(l4, BASE + 0x10).unwrap();
    assert_eq!(mem.page(pfn)[0x10], 0xF4);
    assert_eq!(flags & 0x7, 0x7);
    let (pfn, _) = mem.walk(l4, lay.ramdisk.0 + 4096).unwrap();
    assert_eq!(mem.page(pfn)[0], 0xAB);
    let (pfn, _) = mem.walk(l4, BASE + 0x1000).unwrap();
    assert_eq!(&mem.page(pfn)[18 * 32..18 * 32 + 4], &[0x51, 0x41, 0x53, 0xb8]);
    // Page tables are mapped read-only, everything else writable; nothing past v_end.
    let (_, f) = mem.walk(l4, lay.pt.0).unwrap();
    assert_eq!(f & 2, 0);
    assert!(mem.walk(l4, lay.v_end).is_none());
    // P2M and start_info.
    // Every entry, across the page boundaries of the list (2048 entries: four pages).
    for pfn in 0..mem.nr_pages() {
        let (p2m_pfn, _) = mem.walk(l4, lay.p2m.0 + pfn * 8).unwrap();
        let at = ((pfn * 8) % 4096) as usize;
        let e = u64::from_le_bytes(mem.page(p2m_pfn)[at..at + 8].try_into().unwrap());
        assert_eq!(e, mem.mfn(pfn).0, "P2M entry {pfn}");
    }
    let (si_pfn, _) = mem.walk(l4, b.start_info).unwrap();
    let si = StartInfo::read_from_prefix(mem.page(si_pfn)).unwrap().0;
    assert!(si.has_valid_magic());
    assert_eq!(si.nr_pages, 2048);
    assert_eq!(si.cmdline(), b"console=hvc0 hello");
    assert_eq!(si.pt_base.0, lay.pt.0);
    assert_eq!((si.mod_start, si.mod_len), (lay.ramdisk.0, 5000));
    assert_eq!(si.console.domu().mfn, b.console_mfn.unwrap());
    assert_eq!(si.store_evtchn, EvtchnPort(1));
    assert_eq!(b.stack_top, lay.pt.1 + 4096);
}

#[test]
fn too_little_memory_is_refused() {
    let code = vec![0x90u8; 0x2000];
    let img = image::parse(&elf(&code, 0, &good_notes(), 2)).unwrap();
    let mut mem = Fake::new(100);
    let params = BuildParams {
        cmdline: "",
        flags: 0,
        shared_info: PAddr(0),
        store_evtchn: None,
        console_evtchn: None,
    };
    let err = build(&mut mem, &img, &elf(&code, 0, &good_notes(), 2), &[], &params).unwrap_err();
    assert_eq!(err, LayoutError::TooSmall { needed: 1024, have: 100 });
}
