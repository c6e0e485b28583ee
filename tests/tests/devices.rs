//! dom0 owns QEMU's PCI devices: it finds virtio-blk and virtio-net, takes their interrupts
//! as event channels (pirqs), maps their registers through DOMID_IO, gives them machine
//! addresses for DMA, and passes its self-tests on both (`devtest=1`). A domU's attempts at
//! the same are refused with Xen's errnos (`tests/tests/memory.rs`, the hostile scenario).

use std::io::{Read, Seek, SeekFrom, Write};

use tests::*;

#[test]
fn dom0_drives_virtio_blk_and_net_by_interrupts() {
    let _g = shared();
    let disk = scratch_disk("devices", 32);
    // A marker in the scratch area (the last 4 KiB) that the self-test must put back.
    let marker = b"xen-core scratch area: keep me";
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        f.seek(SeekFrom::Start((32 << 20) - 4096)).unwrap();
        f.write_all(marker).unwrap();
    }
    let run = Boot::new("devices", "dom0", "devtest=1").disk(&disk).nic(None).run();
    run.expect_status(EXIT_POWEROFF);
    run.expect("dom0: virtio-blk 00:");
    run.expect("65536 sectors (32 MiB)");
    run.expect("dom0: virtio-net 00:");
    run.expect("1 virtio disk(s), 1 virtio NIC(s)");
    let blk = run.line("virtio-blk").to_string();
    assert!(blk.contains("as pirq") && blk.contains("on port"), "{blk}");
    run.expect("selftest ok: 4096 bytes written at sector 65528, flushed, read back identical");
    run.expect("gateway 10.0.2.2 is at 52:55:0a:00:02:02");
    run.expect("dom0: dma selftest ok: XENMEM_exchange gave 4 machine-contiguous pages");
    let net = run.line("virtio-net 00:04.0 selftest").to_string();
    assert!(net.contains("selftest ok") && net.contains("5/5 echo replies"), "{net}");
    run.expect_not("FAILED");
    run.expect_not("unexpected interrupt vector");
    // The disk's old contents are back, and what dom0 wrote reached the image in between
    // (the self-test read it back through the device).
    let mut f = std::fs::File::open(&disk).unwrap();
    f.seek(SeekFrom::Start((32 << 20) - 4096)).unwrap();
    let mut got = vec![0u8; marker.len()];
    f.read_exact(&mut got).unwrap();
    assert_eq!(&got, marker);
}

#[test]
fn without_devices_dom0_finds_none_and_serves_on() {
    let _g = shared();
    let run = Boot::new("no-devices", "dom0", "devtest=1").run();
    run.expect_status(EXIT_POWEROFF);
    run.expect("0 virtio disk(s), 0 virtio NIC(s)");
    run.expect("dom0: devtest: no virtio devices");
}

#[test]
fn dom0_serves_domus_while_driving_its_devices() {
    let _g = shared();
    let disk = scratch_disk("devices-domus", 16);
    let run = Boot::new("devices-domus", "dom0", "devtest=1")
        .hv_args("loglvl=info domu=guest1:1:16M")
        .domus(&["scenario=ticker count=3 period_ms=100"])
        .disk(&disk)
        .nic(Some((0, 7)))
        .run();
    run.expect_status(EXIT_POWEROFF);
    run.expect("IOAPIC 24 pins");
    run.expect("virtio-blk 00:03.0 selftest ok");
    run.expect("virtio-net 00:04.0 selftest ok");
    run.expect("[guest1] RESULT ticker: done");
    run.expect("dom0: d1 (guest1) is gone");
    run.expect_not("FAILED");
}
