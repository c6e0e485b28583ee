//! Debian bookworm's own Linux (`linux-image-amd64`, 6.1), unmodified, as a 256 MiB domU with a
//! busybox initramfs (`tests::linux`), beside our dom0 (its xenstored, its console back end and
//! the serial routing a user types into). What the builder reads from the real image and lays
//! out for it is checked on the host; the boots (dom0's toolstack builds the domain, from the
//! `domu=` boot modules or from a configuration in its ramdisk) run a shell session, power off
//! and reboot.
//!
//! The image comes from apt-get (cached once per machine). Without apt-get or a network these
//! tests say so and skip, except under CI (`CI` set) or `REQUIRE_LINUX`, where that fails.
//!
//! The hypervisor runs with `smap=0` here: QEMU 7.2's TCG takes the stack reads of a ring-3
//! `iretq` for supervisor accesses when SMAP is on (../shared/PLATFORM.md), and Linux's
//! `sync_core` does such an iretq; real Xen needs the same (`xen-reference` passes it).

use std::collections::HashMap;

use hypercall_abi::{EvtchnPort, Mfn, PAddr};
use pvbuild::bzimage::{self, Payload};
use pvbuild::image::{self, EMULATES_WRITABLE_PAGE_TABLES, ImageError};
use pvbuild::{self, BuildParams, GuestMemory};
use tests::linux::{self, INIT_SHELL, INIT_UP, LinuxGuest, TLS_PASS};
use tests::*;

const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;
const INIT_P2M: u64 = 0x80_0000_0000;

/// The guest, or `None` after saying why it cannot be had here.
fn guest() -> Option<LinuxGuest> {
    linux::linux_guest_or_skip()
}

/// The kernel ELF inside Debian's vmlinuz, unpacked by the builder's own code.
fn vmlinux(g: &LinuxGuest) -> Vec<u8> {
    let file = std::fs::read(&g.kernel).unwrap();
    assert!(bzimage::is_bzimage(&file), "{} is not a bzImage", g.kernel.display());
    match bzimage::payload(&file).unwrap() {
        Payload::Xz { stream, unpacked_len, dict_len } => {
            // Debian's payload: XZ with a 32 MiB dictionary.
            assert_eq!(dict_len, 32 << 20);
            let mut out = vec![0u8; unpacked_len];
            let mut dict = vec![0u8; dict_len];
            bzimage::unpack_xz(stream, &mut out, &mut dict).unwrap();
            out
        }
        Payload::Elf(_) => panic!("Debian's kernel is XZ-compressed"),
    }
}

#[test]
fn debians_linux_notes_parse_to_the_expected_values() {
    let Some(g) = guest() else { return };
    let elf = vmlinux(&g);
    assert!(elf.starts_with(b"\x7fELF"));
    let refused = image::parse(&elf);
    if !EMULATES_WRITABLE_PAGE_TABLES {
        assert_eq!(refused, Err(ImageError::RequiredFeature("writable_page_tables".into())));
    }
    let img = image::parse_forcing(&elf, &["writable_page_tables"]).unwrap();
    assert_eq!(img.guest_os, "linux");
    assert_eq!(img.virt_base, VIRT_BASE);
    // No PADDR_OFFSET note: text at p_paddr 16 MiB lands at VIRT_BASE + 16 MiB (pfn 0x1000).
    assert_eq!(img.virt_kstart, VIRT_BASE + 0x100_0000);
    assert!((img.virt_kstart..img.virt_kend).contains(&img.entry));
    assert_eq!(img.init_p2m, Some(INIT_P2M));
    assert!(img.mod_start_pfn);
    assert_eq!(img.hypercall_page, None, "6.1.123+ has no HYPERCALL_PAGE note");
    // FEATURES "!writable_page_tables|pae_pgdir_above_4gb" and SUPPORTED_FEATURES 0x8801.
    assert_eq!(img.features_required, 1);
    assert_eq!(img.features_supported, 0x8801 | 1 << 4);
}

/// A sparse guest memory: pfn p is mfn 0x100000 + p.
struct Sparse {
    nr: u64,
    pages: HashMap<u64, Box<[u8; 4096]>>,
}

impl GuestMemory for Sparse {
    fn nr_pages(&self) -> u64 {
        self.nr
    }
    fn mfn(&self, pfn: u64) -> Mfn {
        assert!(pfn < self.nr);
        Mfn(0x10_0000 + pfn)
    }
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        assert!(pfn < self.nr);
        let p = self.pages.entry(pfn).or_insert_with(|| Box::new([0; 4096]));
        p[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

#[test]
fn debians_linux_gets_xens_layout_as_a_256_mib_domu() {
    let Some(g) = guest() else { return };
    let elf = vmlinux(&g);
    let initramfs = std::fs::read(&g.initramfs).unwrap();
    let img = image::parse_forcing(&elf, &["writable_page_tables"]).unwrap();
    let mut mem = Sparse { nr: 256 << 8, pages: HashMap::new() };
    let params = BuildParams {
        cmdline: "console=hvc0",
        flags: 0,
        shared_info: PAddr(0x1000),
        store_evtchn: Some(EvtchnPort(1)),
        console_evtchn: Some(EvtchnPort(2)),
    };
    let b = pvbuild::build(&mut mem, &img, &elf, &initramfs, &params).unwrap();
    let l = b.layout;
    println!("{l:#x?}");
    // The initial mapping stays inside the one L2 Linux copies (VIRT_BASE's 1 GiB).
    assert_eq!((l.v_end - 1) >> 30, VIRT_BASE >> 30);
    assert_eq!(l.kernel.0, VIRT_BASE + 0x100_0000);
    // The initramfs after the mapping, by pfn; the P2M (512 KiB: 128 frames) at INIT_P2M
    // after it, with its L3, L2 and L1.
    let end_pfn = (l.v_end - VIRT_BASE) / 4096;
    assert!(l.ramdisk_unmapped);
    assert_eq!(l.ramdisk_pfns, (end_pfn, (initramfs.len() as u64).div_ceil(4096)));
    assert_eq!(l.p2m, (INIT_P2M, INIT_P2M + (256 << 20) / 4096 * 8));
    assert_eq!(l.p2m_part, (end_pfn + l.ramdisk_pfns.1, 128 + 3));
    assert!(l.nr_used <= 256 << 8);
    // The kernel's bytes are where its segments say: the entry point's code.
    let entry_pfn = (b.entry - VIRT_BASE) / 4096;
    assert!(mem.pages.contains_key(&entry_pfn), "the entry page was written");
}

/// The number after `key` in `line`, in hex (`key 0x...`).
fn hex_after(line: &str, key: &str) -> u64 {
    let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("{key:?} not in {line:?}"));
    let digits = rest.trim_start().trim_start_matches("0x");
    let end = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], 16).unwrap()
}

fn linux_boot(name: &str, g: &LinuxGuest, hv_args: &str) -> Boot {
    Boot::new(name, "dom0", "")
        .hv_args(hv_args)
        .module(g.kernel.clone(), "console=hvc0 earlyprintk=xen")
        .module(g.initramfs.clone(), "")
        .memory_mib(1024)
        .timeout_secs(400)
}

/// The hypervisor options of a Linux boot (see the module docs for smap=0).
const LINUX_HV: &str = "loglvl=info smap=0 domu=linux:1:256M domu_ramdisk=linux:2";

/// The harness's side of the bargain: the same kernel and initramfs reach the busybox shell
/// on Xen 4.17 (as dom0 there: its toolstack-less way to boot a kernel), modules loaded and
/// the threads + TLS program passing. A failure of the xen-core boot below is then ours.
#[test]
fn the_initramfs_boots_debians_linux_to_a_shell_on_xen_4_17() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    let kernel = g.kernel.to_str().expect("a UTF-8 path");
    let initramfs = g.initramfs.to_str().expect("a UTF-8 path");
    let until = "LINUX-INIT: shell|TLS-TEST: FAIL|Kernel panic";
    let args = ["--timeout", "280", "--until", until, kernel, "console=hvc0", "--", initramfs];
    let Some(out) = xen_reference_or_skip(&args) else { return };
    let _ = std::fs::create_dir_all(root().join("target/test-logs"));
    let _ = std::fs::write(root().join("target/test-logs/linux-xen-reference.log"), &out);
    for want in [INIT_UP, "loaded xen-blkfront.ko", "loaded xen-netfront.ko", TLS_PASS, INIT_SHELL]
    {
        assert!(
            out.contains(want),
            "no {want:?} on Xen 4.17 (target/test-logs/linux-xen-reference.log)"
        );
    }
}

/// The goal of issue 12: Debian's Linux boots beside our dom0 to a busybox shell, loads its
/// Xen front ends, and over the console (dom0 routing the serial line to it) runs what a
/// user would: uname, dmesg, /proc/meminfo, 1000 fork+exec, threads with TLS, mmap churn,
/// signals; then `poweroff` inside Linux ends the domain cleanly, and dom0 sees it go.
#[test]
fn debians_linux_boots_to_a_shell_and_runs_user_space() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    let steps: &[(&str, &str)] = &[
        (INIT_SHELL, "route 1\n"),
        // Markers are computed by the shell: the echoed command line does not contain them.
        ("console input now goes to d1", "uname -a; echo STEP-$((1))\n"),
        ("STEP-1", "dmesg | grep -i xen | head -5; echo STEP-$((2))\n"),
        ("STEP-2", "head -3 /proc/meminfo; echo STEP-$((3))\n"),
        ("STEP-3", "/bin/linux-probe forkexec 1000; echo STEP-$((4))\n"),
        ("STEP-4", "/bin/linux-probe tls; echo STEP-$((5))\n"),
        ("STEP-5", "/bin/linux-probe mmap 64; echo STEP-$((6))\n"),
        ("STEP-6", "/bin/linux-probe signals; echo STEP-$((7))\n"),
        ("STEP-7", "/bin/linux-probe sysregs; echo STEP-$((8))\n"),
        ("STEP-8", "poweroff -f\n"),
    ];
    let mut boot = linux_boot("linux-shell", &g, LINUX_HV);
    for (marker, text) in steps {
        boot = boot.type_after(marker, text);
    }
    let run = boot.run();
    // The builder unpacked the bzImage and laid Linux out as Xen does (checked in detail on the
    // host above): text at VIRT_BASE + 16 MiB, the initramfs by pfn, the P2M at INIT_P2M.
    run.expect("linux: bzImage:");
    let layout = run.line("linux: layout:");
    assert_eq!(hex_after(layout, "kernel "), VIRT_BASE + 0x100_0000, "{layout}");
    assert!(layout.contains("ramdisk pfn") && layout.contains("P2M 0x8000000000-"), "{layout}");
    run.expect(INIT_UP);
    run.expect("LINUX-INIT: loaded xen-blkfront.ko");
    run.expect("LINUX-INIT: loaded xen-netfront.ko");
    assert_eq!(run.matching(TLS_PASS).len(), 2, "TLS at init and from the shell");
    let uname = run.line("Linux (none) 6.1");
    println!("{uname}");
    run.expect("Xen version");
    run.expect("MemTotal:");
    run.expect("FORKEXEC-TEST: PASS 1000 runs of /bin/true");
    run.expect("MMAP-TEST: PASS 8 x 64 MiB");
    run.expect("SIGNAL-TEST: PASS");
    run.expect("SYSREGS-TEST: PASS");
    run.expect_not("-TEST: FAIL");
    // poweroff: the domain ends as a poweroff, is destroyed with every frame back, and dom0,
    // told through VIRQ_DOM_EXC, lets it go and powers the machine off.
    run.expect("domain 1 (linux) shut down: poweroff");
    run.expect("domain 1: all frames returned");
    run.expect("dom0: d1 (linux) is gone");
    run.expect_status(EXIT_POWEROFF);
}

/// Debian's Linux from an xl.cfg configuration in dom0's ramdisk (kernel, initramfs and
/// config in one archive, as `./scripts/run` makes from a folder): dom0's toolstack unpacks the
/// bzImage in its own memory, builds the domain through domctl, and Linux reaches its shell.
#[test]
fn debians_linux_from_a_config_in_dom0s_ramdisk_reaches_its_shell() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    let config = "# Debian's Linux\nname = \"debian\"\nkernel = \"boot/vmlinuz\"\n\
                  ramdisk = \"boot/initramfs.cpio\"\nmemory = 256\n\
                  extra = \"console=hvc0 earlyprintk=xen\"\n";
    let archive = guest_archive(
        "linux-config",
        &[
            ("boot/vmlinuz", std::fs::read(&g.kernel).unwrap()),
            ("boot/initramfs.cpio", std::fs::read(&g.initramfs).unwrap()),
            ("debian.cfg", config.as_bytes().to_vec()),
        ],
    );
    let run = Boot::new("linux-config", "dom0", "create=debian")
        .hv_args("loglvl=info smap=0")
        .module(archive, "")
        .memory_mib(1024)
        .timeout_secs(400)
        .type_after(INIT_SHELL, "route 1\n")
        .type_after("console input now goes to d1", "echo CFG-$((6*7))\n")
        .until("CFG-42")
        .run();
    run.expect("dom0: debian: bzImage:");
    let layout = run.line("debian: layout:");
    assert_eq!(hex_after(layout, "kernel "), VIRT_BASE + 0x100_0000, "{layout}");
    assert!(layout.contains("ramdisk pfn") && layout.contains("P2M 0x8000000000-"), "{layout}");
    run.expect(
        "dom0: d1 (debian) created: 256 MiB, kernel boot/vmlinuz, ramdisk boot/initramfs.cpio",
    );
    run.expect(INIT_UP);
    run.expect(TLS_PASS);
    run.expect("CFG-42");
}

/// `reboot` inside Linux restarts it, as Xen's `on_reboot=restart` does: dom0's toolstack
/// destroys the domain and builds it again from the same images (the boot modules the
/// hypervisor kept), its console and XenStore connected anew; its shell comes up again.
#[test]
fn reboot_inside_linux_restarts_it() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    // The rebuilt domain has a new id (2: createdomain hands out ids in turn, as Xen's does),
    // so the console is routed to it anew, as `xl console` attaches to the new domain. The
    // second INIT_SHELL line answers the second entry for it.
    let run = linux_boot("linux-reboot", &g, LINUX_HV)
        .type_after(INIT_SHELL, "route 1\n")
        .type_after("console input now goes to d1", "reboot -f\n")
        .type_after(INIT_SHELL, "route 2\n")
        .type_after("console input now goes to d2", "echo AGAIN-$((6*7))\n")
        .until("AGAIN-42")
        .run();
    run.expect("domain 1 (linux) shut down: reboot");
    run.expect("dom0: domain 2 (linux) rebuilt after its reboot");
    run.expect("AGAIN-42");
    let ups = run.matching(INIT_UP);
    assert_eq!(ups.len(), 2, "Linux came up {} times:\n{}", ups.len(), run.text());
}

/// Issue 12's stretch: the same unmodified kernel as dom0 on xen-core (Xen's machine memory
/// map, the first MiB and the holes below the end of RAM as I/O frames, `platform_op`
/// settime). It reaches its shell, runs a command typed on the serial line (console_io read
/// and VIRQ_CONSOLE) and powers the machine off.
#[test]
fn debians_linux_boots_as_dom0_to_a_shell() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    let run = Boot::new("linux-dom0", "dom0", "console=hvc0 earlyprintk=xen")
        .hv_args("loglvl=info smap=0 dom0_mem=512M")
        .module(g.initramfs.clone(), "")
        .memory_mib(1024)
        .timeout_secs(400)
        .type_after(INIT_SHELL, "uname -a; /bin/linux-probe sysregs; echo DOM0-$((6*7))\n")
        .type_after("DOM0-42", "poweroff -f\n")
        .run_with_dom0(&g.kernel);
    // The machine's map (XENMEM_machine_memory_map): the BIOS's reserved top of 4 GiB.
    run.expect("Xen: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved");
    // The BIOS's tables, read through the first MiB mapped as I/O frames.
    run.expect("DMI: QEMU Standard PC");
    run.expect(INIT_UP);
    run.expect(TLS_PASS);
    let uname = run.line("Linux (none) 6.1");
    println!("{uname}");
    run.expect("SYSREGS-TEST: PASS");
    run.expect("DOM0-42");
    run.expect_not("unknown hypercall 7"); // platform_op settime: Linux retries it on failure
    run.expect_status(EXIT_POWEROFF);
}

/// Debian's Linux under dom0's shell: created from its configuration, its own balloon driver
/// obeys `mem-set` (memory/target) down and back up, the hypervisor's free memory following,
/// and `shutdown` reaches it through `control/shutdown`.
#[test]
fn debians_linux_obeys_the_shells_mem_set_and_shutdown() {
    let Some(g) = guest() else { return };
    let _machine = shared();
    let config = "name = \"debian\"\nkernel = \"boot/vmlinuz\"\n\
                  ramdisk = \"boot/initramfs.cpio\"\nmemory = 256\n\
                  extra = \"console=hvc0 earlyprintk=xen\"\n";
    let archive = guest_archive(
        "linux-shell",
        &[
            ("boot/vmlinuz", std::fs::read(&g.kernel).unwrap()),
            ("boot/initramfs.cpio", std::fs::read(&g.initramfs).unwrap()),
            ("debian.cfg", config.as_bytes().to_vec()),
        ],
    );
    let run = Boot::new("linux-shell", "dom0", "shell=1")
        .hv_args("loglvl=info smap=0")
        .module(archive, "")
        .memory_mib(1024)
        .timeout_secs(400)
        .step("dom0: shell ready", "create debian\r")
        .step(INIT_SHELL, "info\rmem-set debian 192\rtop\rtop\rinfo\rlist\rmem-set debian 256\rtop\rtop\rinfo\rlist\rshutdown debian\r")
        .step("dom0: d1 (debian) is gone", "info\rpoweroff\r")
        .until("dom0: powering off")
        .run();
    let free: Vec<i64> =
        run.matching("free_frames ").iter().map(|l| num_after(l, "free_frames")).collect();
    assert_eq!(free.len(), 4, "{}", run.text());
    println!("free frames: {free:?}");
    // 64 MiB given back by Linux's balloon, then taken again.
    assert_eq!(free[1] - free[0], 16384, "{free:?}");
    assert_eq!(free[2], free[0], "{free:?}");
    // Its xenbus control handler acknowledged and ran /sbin/poweroff.
    run.expect_not("did not acknowledge");
    run.expect("domain 1 (debian) shut down: poweroff");
    run.expect("domain 1: all frames returned");
}
