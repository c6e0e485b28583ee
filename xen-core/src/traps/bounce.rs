//! The frames the hypervisor writes on a guest's kernel stack to deliver an exception, an
//! event upcall or a failsafe callback, exactly as Xen lays them out for 64-bit PV guests.
//!
//! Low to high: `rcx, r11, [error code], rip, cs, rflags, rsp, ss` (the failsafe frame has
//! `ds, es, fs, gs` after r11). The guest handler starts with `pop rcx; pop r11` and returns
//! with the `iret` hypercall (or a native `iretq` after ORing 3 into cs and ss). The cs slot
//! carries the vCPU's saved upcall mask in bits 32-39, and its RPL is cleared when the vCPU
//! was in kernel mode so the handler can tell kernel from user. rflags.IF shows the virtual
//! interrupt flag (the inverse of the saved mask).

const IF: u64 = 1 << 9;

/// The interrupted guest state a frame describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted {
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub rcx: u64,
    pub r11: u64,
    /// The vCPU was in guest kernel mode.
    pub kernel_mode: bool,
    /// The vCPU's upcall mask before delivery.
    pub upcall_mask: u8,
}

/// Where the frame goes and what it holds. Held inline: delivering an exception or event
/// allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// New guest rsp: the frame's lowest word.
    pub rsp: u64,
    buf: [u64; MAX_WORDS],
    len: usize,
}

/// The largest frame: a failsafe frame (rcx, r11, four segments, then rip, cs, rflags, rsp, ss).
const MAX_WORDS: usize = 11;

impl Frame {
    fn new(stack: u64, parts: &[&[u64]]) -> Frame {
        let mut f = Frame { rsp: 0, buf: [0; MAX_WORDS], len: 0 };
        for w in parts.iter().flat_map(|p| p.iter()) {
            f.buf[f.len] = *w;
            f.len += 1;
        }
        f.rsp = (stack & !15).wrapping_sub(f.len as u64 * 8);
        f
    }

    /// Words from `rsp` upwards.
    pub fn words(&self) -> &[u64] {
        &self.buf[..self.len]
    }
}

/// Builds an exception or event frame. `stack` is the guest stack to use: the interrupted rsp
/// in kernel mode, the registered kernel stack otherwise.
pub fn exception_frame(int: &Interrupted, stack: u64, error_code: Option<u64>) -> Frame {
    let mut cs = int.cs & 0xFFFF;
    if int.kernel_mode {
        cs &= !3;
    }
    cs |= u64::from(int.upcall_mask) << 32;
    let rflags = if int.upcall_mask != 0 { int.rflags & !IF } else { int.rflags | IF };
    let ec = error_code.as_slice();
    Frame::new(stack, &[&[int.rcx, int.r11], ec, &[int.rip, cs, rflags, int.rsp, int.ss]])
}

/// Builds a failsafe-callback frame (used when the guest's own segment state cannot be
/// restored): `rcx, r11, ds, es, fs, gs` then the exception frame's tail.
pub fn failsafe_frame(int: &Interrupted, stack: u64, segs: [u64; 4]) -> Frame {
    let base = exception_frame(int, stack, None);
    let w = base.words();
    Frame::new(stack, &[&w[..2], &segs, &w[2..]])
}

pub use hypercall_abi::arch::{IretContext, VGCF_IN_SYSCALL};

/// What returning through an `IretContext` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IretResult {
    pub to_user: bool,
    pub rip: u64,
    pub rflags: u64,
    pub rsp: u64,
    /// New upcall mask (from the popped IF).
    pub upcall_mask: u8,
    pub restore_rcx_r11: bool,
}

/// Interprets an iret context: IF is forced on in the real flags and becomes the virtual
/// mask; IOPL and other system flags are stripped so the guest gains no privilege.
pub fn iret(ctx: &IretContext) -> IretResult {
    // Flags a guest may own: CF PF AF ZF SF TF DF OF (and ID/AC/RF are harmless in ring 3).
    const GUEST_FLAGS: u64 = 0x0000_0000_0025_0DD5;
    IretResult {
        to_user: ctx.cs & 3 == 3,
        rip: ctx.rip,
        // Bit 1 always reads as 1 (and is what `sysret` leaves in r11 with VGCF_in_syscall).
        rflags: (ctx.rflags & GUEST_FLAGS) | IF | 2,
        rsp: ctx.rsp,
        upcall_mask: u8::from(ctx.rflags & IF == 0),
        restore_rcx_r11: ctx.flags & VGCF_IN_SYSCALL == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(kernel_mode: bool, mask: u8) -> Interrupted {
        Interrupted {
            rip: 0x1000,
            cs: 0xe033,
            rflags: 0x202,
            rsp: 0x8007,
            ss: 0xe02b,
            rcx: 11,
            r11: 22,
            kernel_mode,
            upcall_mask: mask,
        }
    }

    #[test]
    fn exception_frame_layout() {
        let f = exception_frame(&int(true, 1), 0x9009, Some(0x55));
        assert_eq!(f.rsp, 0x9000 - 8 * 8);
        assert_eq!(f.words(), [11, 22, 0x55, 0x1000, 0xe030 | (1 << 32), 0x002, 0x8007, 0xe02b]);
        let f = exception_frame(&int(false, 0), 0x9000, None);
        assert_eq!(f.words()[2..5], [0x1000, 0xe033, 0x202]);
        assert_eq!(f.rsp, 0x9000 - 7 * 8);
    }

    #[test]
    fn failsafe_layout() {
        let f = failsafe_frame(&int(true, 0), 0x9000, [1, 2, 3, 4]);
        assert_eq!(f.words(), [11, 22, 1, 2, 3, 4, 0x1000, 0xe030, 0x202, 0x8007, 0xe02b]);
    }

    #[test]
    fn iret_sanitises() {
        let c = IretContext {
            rax: 0,
            r11: 0,
            rcx: 0,
            flags: VGCF_IN_SYSCALL,
            rip: 5,
            cs: 0xe033,
            rflags: 0x3000 | 0x4000 | 0x1,
            rsp: 9,
            ss: 0xe02b,
        };
        let r = iret(&c);
        assert!(r.to_user);
        assert_eq!(r.rflags, 0x203, "IOPL and NT stripped, IF and bit 1 set");
        assert_eq!(r.upcall_mask, 1);
        assert!(!r.restore_rcx_r11);
        let r = iret(&IretContext { cs: 0xe030, rflags: 0x200, flags: 0, ..c });
        assert!(!r.to_user && r.upcall_mask == 0 && r.restore_rcx_r11);
    }
}
