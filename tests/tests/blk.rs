//! dom0's blkback serves guests' virtual block devices from its virtio disks, in Xen's blkif
//! protocol: a pv-guest's blkfront writes a pattern that a new QEMU on the same image reads
//! back, an acknowledged flushed write survives QEMU being killed, and hostile frontends get
//! their device closed while dom0 and the other guests carry on.

use std::path::{Path, PathBuf};

use tests::*;

/// The pattern the `blk` scenario writes (pv-guest/src/kernel/scenarios/blk.rs), computed
/// here independently, so the host can check the image itself.
fn pattern(seed: u64, sector: u64) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..8].copy_from_slice(&sector.to_le_bytes());
    b[8..16].copy_from_slice(&seed.to_le_bytes());
    for (i, x) in b.iter_mut().enumerate().skip(16) {
        *x = (sector.wrapping_mul(131) ^ (i as u64).wrapping_mul(7) ^ seed.wrapping_mul(13)) as u8;
    }
    b
}

fn cfg(name: &str, extra: &str, disk: &str) -> Vec<u8> {
    format!(
        "name = '{name}'\nkernel = 'pv-guest'\nextra = '{extra}'\nmemory = 16\ndisk = [ '{disk}' ]\n"
    )
    .into_bytes()
}

/// dom0 with the guests `cfgs` (name, extra, disk entry) created from its ramdisk.
fn boot(name: &str, cfgs: &[(&str, &str, &str)]) -> Boot {
    boot_with(name, "", cfgs)
}

/// [`boot`] with more of dom0's command line (`args`).
fn boot_with(name: &str, args: &str, cfgs: &[(&str, &str, &str)]) -> Boot {
    let mut files = vec![pv_guest_file()];
    for (n, extra, disk) in cfgs {
        files.push((Box::leak(format!("{n}.cfg").into_boxed_str()), cfg(n, extra, disk)));
    }
    let archive = guest_archive(name, &files);
    let list: Vec<&str> = cfgs.iter().map(|c| c.0).collect();
    Boot::new(name, "dom0", &format!("create={} {args}", list.join("+")))
        .module(archive, "")
        .timeout_secs(300)
}

fn sectors_match(image: &Path, seed: u64, first: u64, n: u64) -> Result<(), String> {
    let data = std::fs::read(image).map_err(|e| e.to_string())?;
    for s in first..first + n {
        let at = (s * 512) as usize;
        if data.get(at..at + 512) != Some(&pattern(seed, s)[..]) {
            return Err(format!("sector {s} of {} differs from the pattern", image.display()));
        }
    }
    Ok(())
}

fn fresh_disk(name: &str, mib: u64) -> PathBuf {
    scratch_disk(name, mib)
}

#[test]
fn a_pattern_written_survives_power_off_and_a_new_boot() {
    let disk = fresh_disk("blk-persist", 16);
    let first = boot(
        "blk-persist-write",
        &[(
            "writer",
            "scenario=blk mode=write seed=7 sectors=2048 restart=1",
            "phy:virtio0,xvda,w",
        )],
    )
    .disk(&disk)
    .run();
    first.expect_status(EXIT_POWEROFF);
    first.expect(
        "dom0: d1 (writer) vbd xvda (51712): virtio0 sectors 0+32768, read-write, data by grant copy",
    );
    first.expect("blk: connected: 32768 sectors of 512 bytes, ring of 4 pages");
    first.expect("blk: frontend restarted and reconnected");
    let r = first.line("RESULT blk:").to_string();
    assert!(r.contains("PASS wrote 2048 sectors"), "{r}");
    assert!(!r.contains("(0 indirect)"), "indirect requests were used: {r}");
    assert!(r.contains("64 sectors discarded read back as zeros"), "{r}");
    first.expect_not("closed:");
    // The image holds the pattern (read by the host, not through the guest).
    sectors_match(&disk, 7, 0, 2048).unwrap();
    // A new QEMU on the same image: a guest reads it back through the back end.
    let second = boot(
        "blk-persist-verify",
        &[("reader", "scenario=blk mode=verify seed=7 sectors=2048", "phy:virtio0,xvda,r")],
    )
    .disk(&disk)
    .run();
    second.expect_status(EXIT_POWEROFF);
    second.expect("read-only");
    let r = second.line("RESULT blk:").to_string();
    assert!(r.contains("PASS verified 2048 sectors"), "{r}");
}

/// The other data path Xen's grant tables offer: blkback maps each granted page, copies it
/// and unmaps it (`blkback_grants=map`). The same request shapes (part of a page, direct
/// segments, indirect, after a frontend restart, discard) write a pattern the host finds in
/// the image and the guest reads back through the same path.
#[test]
fn a_pattern_written_and_read_through_grant_maps_is_on_the_disk() {
    let disk = fresh_disk("blk-map", 16);
    let run = boot_with(
        "blk-map",
        "blkback_grants=map",
        &[(
            "mapper",
            "scenario=blk mode=write seed=21 sectors=2048 restart=1",
            "phy:virtio0,xvda,w",
        )],
    )
    .disk(&disk)
    .run();
    run.expect_status(EXIT_POWEROFF);
    run.expect("(mapper) vbd xvda (51712): virtio0 sectors 0+32768, read-write, data by grant map");
    run.expect("blk: frontend restarted and reconnected");
    let r = run.line("RESULT blk:").to_string();
    assert!(r.contains("PASS wrote 2048 sectors"), "{r}");
    assert!(!r.contains("(0 indirect)"), "indirect requests were used: {r}");
    assert!(r.contains("64 sectors discarded read back as zeros"), "{r}");
    run.expect_not("closed:");
    // Nothing stayed mapped: the guest's frames all came back when it went.
    run.expect("domain 1: all frames returned");
    sectors_match(&disk, 21, 0, 2048).unwrap();
}

/// QEMU's disk cache mode for the crash test: `writethrough` completes a write only once
/// the host has made it durable (and honours flushes), so what a guest was told is flushed
/// must be in the image whatever happens to QEMU afterwards. (With `cache=unsafe` QEMU would
/// ignore flushes; `writeback` leaves durability to the flushes it is sent.)
const CRASH_CACHE_MODE: &str = ",cache=writethrough";

#[test]
fn an_acknowledged_flushed_write_survives_qemu_being_killed() {
    let disk = fresh_disk("blk-crash", 16);
    // The harness kills QEMU (SIGKILL) as soon as the guest logs the acknowledgement.
    let crash = boot(
        "blk-crash",
        &[("crasher", "scenario=blk mode=durable seed=99 at=4096", "phy:virtio0,xvda,w")],
    )
    .disk_with(&disk, CRASH_CACHE_MODE)
    .until("RESULT blk: ACK durable write")
    .run();
    assert!(crash.stopped_early, "no acknowledgement; serial output:\n{}", crash.text());
    crash.expect("[crasher] RESULT blk: ACK durable write of sectors 4096+8 seed 99 flushed");
    sectors_match(&disk, 99, 4096, 8).unwrap();
    let next = boot(
        "blk-crash-verify",
        &[("checker", "scenario=blk mode=verify-durable seed=99 at=4096", "phy:virtio0,xvda,r")],
    )
    .disk_with(&disk, CRASH_CACHE_MODE)
    .run();
    next.expect_status(EXIT_POWEROFF);
    next.expect("[checker] RESULT blk: PASS the flushed write at sector 4096 survived");
}

/// Domain ids by name, from dom0's `dN (name) created` lines.
fn domid_of(run: &Run, name: &str) -> u16 {
    let l = run.line(&format!("({name}) created"));
    let d = l.split("dom0: d").nth(1).and_then(|r| r.split(' ').next()).unwrap();
    d.parse().unwrap()
}

#[test]
fn hostile_frontends_are_closed_alone() {
    hostile_frontends("blk-hostile", "");
}

/// The same attacks when blkback maps the guests' grants instead of copying them: a bad
/// grant is a refused map, and no mapping outlives its request.
#[test]
fn hostile_frontends_are_closed_alone_when_blkback_maps_grants() {
    hostile_frontends("blk-hostile-map", "blkback_grants=map");
}

fn hostile_frontends(name: &str, args: &str) {
    let disk = fresh_disk(name, 64);
    // Each guest its own 8 MiB region of the one disk; the honest one writes and verifies
    // 4 MiB while the others attack.
    let attacks = ["ring", "gref", "segment", "range", "storm", "silent"];
    let mut cfgs: Vec<(String, String, String)> = vec![(
        "honest".into(),
        "scenario=blk mode=write seed=3 sectors=8192".into(),
        "phy:virtio0@0+8M,xvda,w".into(),
    )];
    for (i, a) in attacks.iter().enumerate() {
        // The segment attacker starts over and attacks again, five times.
        let repeat = if *a == "segment" { 5 } else { 1 };
        cfgs.push((
            format!("h-{a}"),
            format!("scenario=blkhostile attack={a} seconds=2 repeat={repeat}"),
            format!("phy:virtio0@{}M+8M,xvda,w", 8 * (i + 1)),
        ));
    }
    let refs: Vec<(&str, &str, &str)> =
        cfgs.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    let run = boot_with(name, args, &refs).disk(&disk).memory_mib(768).run();
    run.expect_status(EXIT_POWEROFF);
    // The honest guest's I/O went through, and its device was never closed.
    let r = run.line("[honest] RESULT blk:").to_string();
    assert!(r.contains("PASS wrote 8192 sectors"), "{r}");
    run.expect_not("(honest) vbd xvda: closed");
    sectors_match(&disk, 3, 0, 8192).unwrap();
    let reasons = [
        ("ring", "ring indices out of range"),
        ("gref", "cannot reach its data pages"),
        ("segment", "runs past its page"),
        ("range", "past the end of the vbd"),
        ("storm", "event storm"),
    ];
    for (a, why) in reasons {
        // One line per close, saying why; a frontend that starts over and breaks the protocol
        // again is closed again, and for good at the third time (MAX_STRIKES): no more lines.
        let lines = run.matching(&format!("(h-{a}) vbd xvda: closed:"));
        let want = if a == "segment" { 3 } else { 1 };
        assert_eq!(lines.len(), want, "{a}: {lines:?}\n{}", run.text());
        assert!(lines.iter().all(|l| l.contains(why)), "{a}: {lines:?}");
        run.expect(&format!(
            "[h-{a}] RESULT blkhostile: {a}: the back end closed the device; ring grants released"
        ));
    }
    assert!(run.line("(h-segment) vbd xvda: closed:").contains("segment 0"));
    run.expect("(h-segment) vbd xvda: closed: segment 0 runs past its page (sectors 0..=9); closed for good after 3 violations");
    run.expect("[h-segment] blkhostile: after 3 attacks the back end does not come back");
    // The frontend that never reads its answers costs dom0 nothing and is not closed.
    run.expect("[h-silent] RESULT blkhostile: silent frontend done");
    run.expect_not("(h-silent) vbd xvda: closed");
    // Every guest's frames came back: nothing of theirs stayed mapped in dom0.
    for name in ["honest", "h-ring", "h-gref", "h-segment", "h-range", "h-storm", "h-silent"] {
        let id = domid_of(&run, name);
        run.expect(&format!("domain {id}: all frames returned"));
    }
    run.expect("dom0: all domUs are gone");
    run.expect_not("FAIL");
}

/// Makes an ext4 image of `mib` MiB holding `files` with the host's mkfs.ext4 (e2fsprogs).
fn ext4_image(name: &str, mib: u64, files: &[(&str, &str)]) -> PathBuf {
    let img = fresh_disk(name, mib);
    let dir = root().join("target/disks").join(format!("{name}.d"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (n, text) in files {
        std::fs::write(dir.join(n), text).unwrap();
    }
    let out = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 (e2fsprogs) runs");
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
    img
}

/// A file of an ext4 image, read on the host with debugfs (e2fsprogs).
fn ext4_file(img: &Path, path: &str) -> String {
    let out = std::process::Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .output()
        .expect("debugfs (e2fsprogs) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test that blkback is Xen's protocol and not only our frontend's dialect: Debian's
/// Linux, unmodified, with its own `xen-blkfront`, mounts an ext4 image made on the host,
/// reads a file from it, writes one, unmounts and powers off; the host reads that file back
/// from the image with debugfs.
#[test]
fn linux_mounts_an_ext4_image_through_blkback_and_the_host_reads_its_file() {
    let Some(g) = tests::linux::linux_guest_or_skip() else { return };
    let img = ext4_image("blk-linux", 32, &[("hello.txt", "hello from the host\n")]);
    let config = "name = 'debian'\nkernel = 'boot/vmlinuz'\nramdisk = 'boot/initramfs.cpio'\n\
                  memory = 256\nextra = 'console=hvc0'\ndisk = [ 'phy:virtio0,xvda,w' ]\n";
    let archive = guest_archive(
        "blk-linux",
        &[
            ("boot/vmlinuz", std::fs::read(&g.kernel).unwrap()),
            ("boot/initramfs.cpio", std::fs::read(&g.initramfs).unwrap()),
            ("debian.cfg", config.as_bytes().to_vec()),
        ],
    );
    // Markers are computed by the shell, so the echoed command lines do not contain them.
    let run = Boot::new("blk-linux", "dom0", "create=debian")
        .hv_args("loglvl=info smap=0")
        .module(archive, "")
        .disk(&img)
        .memory_mib(1024)
        .timeout_secs(400)
        .type_after(tests::linux::INIT_SHELL, "route 1\n")
        .type_after(
            "console input now goes to d1",
            "mkdir -p /mnt && mount -t ext4 /dev/xvda /mnt && cat /mnt/hello.txt && \
             echo written-by-linux-$((6*7)) > /mnt/linux.txt && seq 1 200000 > /mnt/numbers.txt && \
             sync && umount /mnt && \
             echo MOUNT-$((1+1))\n",
        )
        .type_after("MOUNT-2", "poweroff -f\n")
        .run();
    run.expect("dom0: d1 (debian) vbd xvda (51712): virtio0 sectors 0+65536, read-write");
    run.expect("LINUX-INIT: loaded xen-blkfront.ko");
    // Linux found what blkback offers.
    run.expect("blkfront: xvda: flush diskcache: enabled");
    run.expect("indirect descriptors: enabled");
    run.expect("hello from the host");
    run.expect("MOUNT-2");
    run.expect_not("closed:");
    run.expect_status(EXIT_POWEROFF);
    assert_eq!(ext4_file(&img, "/linux.txt").trim(), "written-by-linux-42");
    // 1.2 MB written in requests of many segments, read back whole by the host.
    let numbers: String = (1..=200000).map(|n| format!("{n}\n")).collect();
    assert!(ext4_file(&img, "/numbers.txt") == numbers, "numbers.txt differs from seq 1 200000");
}
