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
    let mut files = vec![pv_guest_file()];
    for (n, extra, disk) in cfgs {
        files.push((Box::leak(format!("{n}.cfg").into_boxed_str()), cfg(n, extra, disk)));
    }
    let archive = guest_archive(name, &files);
    let list: Vec<&str> = cfgs.iter().map(|c| c.0).collect();
    Boot::new(name, "dom0", &format!("create={}", list.join("+")))
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
    first.expect("dom0: d1 (writer) vbd xvda (51712): virtio0 sectors 0+32768, read-write");
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
