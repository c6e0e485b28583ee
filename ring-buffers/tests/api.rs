//! The public API as the hypervisor, dom0 and guests use it: memory from a raw page pointer
//! (the `unsafe` constructor), a request/response ring driven from both ends, and the console
//! page, all through `ring_buffers::` paths only.

use core::ptr::NonNull;

use ring_buffers::{
    BackRing, ConsoleRing, FrontRing, Notify, Page, RingError, SetupError, SharedMem, SharedRing,
};

#[test]
fn from_raw_checks_alignment() {
    let mut pages = [Page::new()];
    let base = NonNull::from(&mut pages).cast::<u8>();
    for skew in [2, 4] {
        let odd = NonNull::new(base.as_ptr().wrapping_add(skew)).unwrap();
        // SAFETY: the page is live for the whole test and used by nothing else.
        let err = unsafe { SharedMem::from_raw(odd, 64) }.unwrap_err();
        assert!(matches!(err, SetupError::Misaligned { align: 8, .. }), "{err:?}");
    }
}

#[test]
fn raw_page_front_and_back_like_two_domains() {
    // One page, "mapped" twice: once by the guest's front end, once by dom0's back end.
    let mut pages = [Page::new()];
    let base = NonNull::from(&mut pages).cast::<u8>();
    // SAFETY: the page outlives both handles; inside this program it is used only as this one
    // ring, with one handle per end.
    let guest_mem = unsafe { SharedMem::from_raw(base, 4096) }.unwrap();
    // SAFETY: as above (the second end's handle).
    let dom0_mem = unsafe { SharedMem::from_raw(base, 4096) }.unwrap();
    let mut front = FrontRing::init(SharedRing::<[u64; 14], [u64; 2]>::new(guest_mem).unwrap());
    let mut back = BackRing::new(SharedRing::<[u64; 14], [u64; 2]>::new(dom0_mem).unwrap());
    assert_eq!((front.size(), back.size()), (32, 32));
    for i in 0..32 {
        front.stage([i; 14]).unwrap();
    }
    assert_eq!(front.push_requests(), Notify::Yes);
    let mut n = 0;
    while let Some(req) = back.next_request().unwrap() {
        assert_eq!(req, [n; 14]);
        back.stage_response([n, 0]).unwrap();
        n += 1;
    }
    assert_eq!(n, 32);
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(back.push_responses(), Notify::Yes);
    assert_eq!(front.poll_responses(|r| assert_eq!(r[1], 0)), Ok(32));
    assert_eq!(front.send([99; 14]), Ok(Notify::Yes), "back end armed req_event");
}

#[test]
fn console_guest_and_backend() {
    let mut pages = [Page::new()];
    let mut page = ConsoleRing::new(SharedMem::new(&mut pages)).unwrap();
    page.reset();
    let (mut guest, mut dom0) = page.split();
    let t = guest.write(b"Booting...\n").unwrap();
    assert_eq!(t.bytes, 11);
    assert!(t.notify.is_yes());
    let mut buf = [0u8; 64];
    let t = dom0.read(&mut buf).unwrap();
    assert_eq!(&buf[..t.bytes], b"Booting...\n");
    assert!(dom0.write(b"root\n").unwrap().notify.is_yes());
    let t = guest.read(&mut buf).unwrap();
    assert_eq!(&buf[..t.bytes], b"root\n");
    let e: Result<(), RingError> = Ok(());
    assert!(e.is_ok());
}
