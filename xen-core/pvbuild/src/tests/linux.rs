//! An image with Linux's note set (Debian 6.1's, from `arch/x86/xen/xen-head.S`), and the
//! start-of-day layout a 256 MiB Linux domU gets from it: notes parsed to the expected values,
//! `!writable_page_tables` refused until the switch is flipped, the ramdisk unmapped and named
//! by pfn, the P2M list at INIT_P2M with tables of its own, everything Linux reads in
//! start_info.

use hypercall_abi::start_info::SIF_MOD_START_PFN;
use zerocopy::FromBytes;

use super::super::image::{EMULATES_WRITABLE_PAGE_TABLES, parse_forcing};
use super::*;

const INIT_P2M: u64 = 0x80_0000_0000;
/// Where Linux's text starts, physically (`p_paddr`): pfn 0x1000.
const KERNEL_PADDR: u64 = 0x100_0000;

fn linux_notes() -> Vec<(u32, Vec<u8>)> {
    let s = |v: &str| format!("{v}\0").into_bytes();
    vec![
        (6, s("linux")),
        (7, s("2.6")),
        (5, s("xen-3.0")),
        (3, BASE.to_le_bytes().to_vec()),
        (15, INIT_P2M.to_le_bytes().to_vec()),
        (1, (BASE + KERNEL_PADDR + 0x10).to_le_bytes().to_vec()),
        (10, s("!writable_page_tables|pae_pgdir_above_4gb")),
        (17, 0x8801u32.to_le_bytes().to_vec()),
        (9, s("yes")),
        (8, s("generic")),
        (13, [1u64.to_le_bytes(), 1u64.to_le_bytes()].concat()),
        (14, 1u32.to_le_bytes().to_vec()),
        (16, 1u32.to_le_bytes().to_vec()),
        (12, 0xFFFF_8000_0000_0000u64.to_le_bytes().to_vec()),
        (18, 0x100_0850u32.to_le_bytes().to_vec()),
    ]
}

/// Linux's layout of the file: no PADDR_OFFSET note, `p_paddr` physical, `p_vaddr` virtual.
fn linux_elf(notes: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut code = vec![0x90u8; 0x3000];
    code[0x10] = 0xF4;
    elf_at(&code, 0x10_0000, notes, 2, KERNEL_PADDR, BASE + KERNEL_PADDR)
}

fn linux_image() -> KernelImage {
    parse_forcing(&linux_elf(&linux_notes()), &["writable_page_tables"]).unwrap()
}

#[test]
fn linux_notes_parse_to_the_expected_values() {
    let img = linux_image();
    assert_eq!(img.guest_os, "linux");
    assert_eq!(img.virt_base, BASE);
    // PADDR_OFFSET defaults to 0 with ELF notes: the kernel lands at VIRT_BASE + p_paddr.
    assert_eq!(img.virt_offset, BASE);
    assert_eq!(img.virt_kstart, BASE + KERNEL_PADDR);
    assert_eq!(img.entry, BASE + KERNEL_PADDR + 0x10);
    assert_eq!(img.init_p2m, Some(INIT_P2M));
    assert!(img.mod_start_pfn);
    assert_eq!(img.hypercall_page, None, "recent Linux has no HYPERCALL_PAGE note");
    // writable_page_tables (0), pae_pgdir_above_4gb (4), dom0 (11), linux_rsdp_unrestricted (15).
    assert_eq!(img.features_supported, 1 | 1 << 4 | 1 << 11 | 1 << 15);
    assert_eq!(img.features_required, 1);
}

#[test]
fn writable_page_tables_is_refused_until_the_switch_is_flipped() {
    let r = image::parse(&linux_elf(&linux_notes()));
    if EMULATES_WRITABLE_PAGE_TABLES {
        assert!(r.is_ok(), "{r:?}");
    } else {
        assert_eq!(r, Err(ImageError::RequiredFeature("writable_page_tables".into())));
    }
    // Forcing one feature does not let another through.
    let mut n = linux_notes();
    n[6] = (10, b"!writable_page_tables|!auto_translated_physmap\0".to_vec());
    assert_eq!(
        parse_forcing(&linux_elf(&n), &["writable_page_tables"]),
        Err(ImageError::RequiredFeature("auto_translated_physmap".into()))
    );
}

#[test]
fn an_unusable_init_p2m_is_ignored_as_xen_does() {
    for bad in [INIT_P2M + 8, BASE + 0x1000_0000] {
        let mut n = linux_notes();
        n[4] = (15, bad.to_le_bytes().to_vec());
        let img = parse_forcing(&linux_elf(&n), &["writable_page_tables"]).unwrap();
        assert_eq!(img.init_p2m, None, "{bad:#x}");
    }
}

const NR_PAGES: u64 = 256 << 8; // 256 MiB

fn build_linux(mem: &mut Fake, ramdisk: &[u8]) -> Built {
    let params = BuildParams {
        cmdline: "console=hvc0 earlyprintk=xen",
        flags: 0,
        shared_info: PAddr(0x7000),
        store_evtchn: Some(EvtchnPort(1)),
        console_evtchn: Some(EvtchnPort(2)),
    };
    let img = linux_image();
    build(mem, &img, &linux_elf(&linux_notes()), ramdisk, &params).unwrap()
}

#[test]
fn a_linux_domu_gets_xens_layout() {
    let mut mem = Fake::new(NR_PAGES);
    let ramdisk: Vec<u8> = (0..3 * 4096 + 100).map(|i| i as u8).collect();
    let b = build_linux(&mut mem, &ramdisk);
    let lay = b.layout;
    let l4 = b.l4.0;

    // The initial mapping: from VIRT_BASE, inside the one 1 GiB L2 Linux copies, 4 MiB
    // aligned; the kernel at pfn 0x1000, then start_info directly (no ramdisk, no P2M).
    assert_eq!(lay.v_start, BASE);
    assert_eq!(lay.v_end % (4 << 20), 0);
    assert_eq!((lay.v_end - 1) >> 30, BASE >> 30, "one L2 maps it all");
    assert_eq!(lay.kernel.0, BASE + KERNEL_PADDR);
    assert_eq!(lay.start_info, lay.kernel.1);
    let (pfn, _) = mem.walk(l4, b.entry).unwrap();
    assert_eq!(pfn, 0x1000);
    assert_eq!(mem.page(pfn)[0x10], 0xF4);

    // Tables: L4, then L3, then L2 (which Linux frees by trimming the ends of the range),
    // then L1s; the bootstrap region needs one of each upper level.
    assert_eq!(lay.tables.l3, (lay.pt.0 - BASE) / 4096 + 1);
    assert_eq!(lay.tables.l2, lay.tables.l3 + 1);
    assert_eq!(lay.tables.l1, lay.tables.l2 + 1);

    // The ramdisk: right after the mapping, unmapped, by pfn, with its exact length.
    let v_end_pfn = (lay.v_end - BASE) / 4096;
    assert!(lay.ramdisk_unmapped);
    assert_eq!(lay.ramdisk_pfns, (v_end_pfn, 4));
    assert_eq!(mem.page(v_end_pfn + 3)[99], ramdisk[3 * 4096 + 99]);

    // The P2M list: after the ramdisk, 128 frames for 65536 pages, then its L3, L2 and L1;
    // mapped at INIT_P2M (L4 slot 1) and nowhere in the initial mapping.
    assert_eq!(lay.p2m, (INIT_P2M, INIT_P2M + NR_PAGES * 8));
    assert_eq!(lay.p2m_part, (v_end_pfn + 4, 128 + 3));
    for pfn in (0..NR_PAGES).step_by(509).chain([NR_PAGES - 1]) {
        let (list_pfn, flags) = mem.walk(l4, INIT_P2M + pfn * 8).unwrap();
        assert!((lay.p2m_part.0..lay.p2m_part.0 + 128).contains(&list_pfn));
        assert_eq!(flags & 2, 2, "the P2M list is writable");
        let at = ((pfn * 8) % 4096) as usize;
        let e = u64::from_le_bytes(mem.page(list_pfn)[at..at + 8].try_into().unwrap());
        assert_eq!(e, mem.mfn(pfn).0, "P2M entry {pfn}");
    }
    assert!(mem.walk(l4, INIT_P2M + NR_PAGES * 8).is_none());
    assert!(mem.walk(l4, lay.v_end).is_none());

    // start_info: everything Linux reads.
    let (si_pfn, _) = mem.walk(l4, b.start_info).unwrap();
    let si = StartInfo::read_from_prefix(mem.page(si_pfn)).unwrap().0;
    assert!(si.has_valid_magic());
    assert_eq!(si.nr_pages, NR_PAGES);
    assert_eq!(si.shared_info, PAddr(0x7000));
    assert_eq!(si.flags, SIF_MOD_START_PFN);
    assert_eq!((si.mod_start, si.mod_len), (v_end_pfn, ramdisk.len() as u64));
    assert_eq!(si.mfn_list.0, INIT_P2M);
    assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), lay.p2m_part);
    assert_eq!(si.pt_base.0, lay.pt.0);
    assert_eq!(si.nr_pt_frames, lay.nr_pt_frames);
    assert_eq!((si.store_mfn, si.store_evtchn), (b.store_mfn.unwrap(), EvtchnPort(1)));
    let console = si.console.domu();
    assert_eq!((console.mfn, console.evtchn), (b.console_mfn.unwrap(), EvtchnPort(2)));
    assert_eq!(si.cmdline(), b"console=hvc0 earlyprintk=xen");
    // The boot stack follows the tables; rsp starts at its top.
    assert_eq!(b.stack_top, lay.pt.1 + 4096);
    assert!(mem.walk(l4, b.stack_top - 8).unwrap().1 & 2 != 0);
}

#[test]
fn without_a_ramdisk_nothing_is_named() {
    let mut mem = Fake::new(NR_PAGES);
    let b = build_linux(&mut mem, &[]);
    let (si_pfn, _) = mem.walk(b.l4.0, b.start_info).unwrap();
    let si = StartInfo::read_from_prefix(mem.page(si_pfn)).unwrap().0;
    assert_eq!((si.flags, si.mod_start, si.mod_len), (0, 0, 0));
    // The P2M part moves up to the end of the mapping.
    assert_eq!(si.first_p2m_pfn, (b.layout.v_end - BASE) / 4096);
}

#[test]
fn an_init_p2m_in_the_hypervisors_slots_is_refused() {
    let mut img = linux_image();
    img.init_p2m = Some(0xFFFF_8000_0000_0000);
    let err = Layout::compute(&img, NR_PAGES, 0, true).unwrap_err();
    assert_eq!(err, LayoutError::P2mPlacement);
    // Or in the initial mapping's slot.
    img.init_p2m = Some(0xFFFF_FF80_0000_0000);
    assert_eq!(Layout::compute(&img, NR_PAGES, 0, true), Err(LayoutError::P2mPlacement));
}

#[test]
fn the_p2m_part_counts_against_the_domains_memory() {
    let img = linux_image();
    let lay = Layout::compute(&img, NR_PAGES, 0, true).unwrap();
    // Just enough frames for the mapping alone is not enough.
    let mapped = (lay.v_end - BASE) / 4096;
    let err = Layout::compute(&img, mapped, 0, true).unwrap_err();
    assert!(matches!(err, LayoutError::TooSmall { needed, have } if needed > have), "{err:?}");
}
