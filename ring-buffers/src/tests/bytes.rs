//! Byte rings: partial writes, wrap-around of data and of the u32 indices, notification hints,
//! layout validation.

use super::*;
use crate::{ByteRing, ByteRingLayout, ConsoleRing, Notify, SetupError, XenstoreRing};

pub(crate) const SMALL: ByteRingLayout = ByteRingLayout { data: 0, size: 16, cons: 64, prod: 68 };

#[test]
fn partial_write_then_read() {
    let mut pages = [Page::new()];
    let (mut w, mut r) = ByteRing::new(SharedMem::new(&mut pages), SMALL).unwrap().split();
    let t = w.write(b"0123456789abcdefXYZ").unwrap();
    assert_eq!((t.bytes, t.notify), (16, Notify::Yes), "only 16 fit");
    assert_eq!(w.space(), Ok(0));
    let t = w.write(b"more").unwrap();
    assert_eq!((t.bytes, t.notify), (0, Notify::No));
    let mut buf = [0u8; 10];
    let t = r.read(&mut buf).unwrap();
    assert_eq!((t.bytes, t.notify), (10, Notify::Yes));
    assert_eq!(&buf, b"0123456789");
    assert_eq!(w.write(b"XYZ").unwrap().bytes, 3, "wraps the data area");
    let mut buf = [0u8; 32];
    assert_eq!(r.read(&mut buf).unwrap().bytes, 9);
    assert_eq!(&buf[..9], b"abcdefXYZ");
    let t = r.read(&mut buf).unwrap();
    assert_eq!((t.bytes, t.notify), (0, Notify::No));
}

#[test]
fn indices_wrap_u32() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    evil.store_u32(SMALL.cons, u32::MAX - 20);
    evil.store_u32(SMALL.prod, u32::MAX - 20);
    let (mut w, mut r) = ByteRing::new(mem, SMALL).unwrap().split();
    let mut sent = 0u8;
    let mut recvd = 0u8;
    for step in 0..40usize {
        let chunk: Vec<u8> = (0..(step % 7 + 1)).map(|i| sent.wrapping_add(i as u8)).collect();
        sent = sent.wrapping_add(w.write(&chunk).unwrap().bytes as u8);
        let mut buf = [0u8; 5];
        let n = r.read(&mut buf).unwrap().bytes;
        for &b in &buf[..n] {
            assert_eq!(b, recvd);
            recvd = recvd.wrapping_add(1);
        }
    }
    let mut buf = [0u8; 16];
    let n = r.read(&mut buf).unwrap().bytes;
    recvd = recvd.wrapping_add(n as u8);
    assert_eq!(sent, recvd);
    assert!(evil.load_u32(SMALL.prod) < 200, "producer index wrapped past u32::MAX");
}

#[test]
fn console_full_rings() {
    let mut pages = [Page::new()];
    let (mut guest, mut dom0) = ConsoleRing::new(SharedMem::new(&mut pages)).unwrap().split();
    let big = [b'x'; 5000];
    assert_eq!(guest.write(&big).unwrap().bytes, 2048);
    assert_eq!(dom0.write(&big).unwrap().bytes, 1024);
    assert_eq!(guest.write_space(), Ok(0));
    assert_eq!(dom0.read_available(), Ok(2048));
    assert_eq!(guest.read_available(), Ok(1024));
}

#[test]
fn xenstore_full_rings() {
    let mut pages = [Page::new()];
    let (mut guest, mut xsd) = XenstoreRing::new(SharedMem::new(&mut pages)).unwrap().split();
    let big = [7u8; 3000];
    assert_eq!(guest.write(&big).unwrap().bytes, 1024);
    assert_eq!(xsd.write(&big).unwrap().bytes, 1024);
    let mut buf = [0u8; 4096];
    assert_eq!(xsd.read(&mut buf).unwrap().bytes, 1024);
    assert_eq!(guest.read(&mut buf).unwrap().bytes, 1024);
    assert_eq!(guest.write_space(), Ok(1024));
}

#[test]
fn attach_resumes_from_page_indices() {
    let mut pages = [Page::new()];
    let mem = SharedMem::new(&mut pages);
    let evil = mem.peer_view();
    let mut ring = ByteRing::new(mem, SMALL).unwrap();
    ring.reset();
    evil.write_bytes(0, b"abc");
    evil.store_u32(SMALL.prod, 3);
    let mut r = ring.reader();
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf).unwrap().bytes, 3);
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(evil.load_u32(SMALL.cons), 3);
}

#[test]
fn bad_layouts_rejected() {
    let mut pages = [Page::new()];
    let mut mem = SharedMem::new(&mut pages);
    let bad = [
        ByteRingLayout { size: 12, ..SMALL },
        ByteRingLayout { cons: 66, ..SMALL },
        ByteRingLayout { prod: 64, ..SMALL },
        ByteRingLayout { cons: 8, ..SMALL },
    ];
    for l in bad {
        assert_eq!(l.check(4096), Err(SetupError::BadLayout), "{l:?}");
        mem = match ByteRing::new(mem, l) {
            Ok(_) => panic!("accepted {l:?}"),
            Err(_) => SharedMem::new(&mut []),
        };
    }
    assert_eq!(SMALL.check(71), Err(SetupError::TooSmall { len: 71, need: 72 }));
    assert_eq!(SMALL.check(72), Ok(()));
}
