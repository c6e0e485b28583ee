//! Building a domU from its configuration, as Xen's toolstack does: everything that can be
//! checked without a domain first (the images are found and read, a bzImage unpacked, the
//! kernel parsed and its start-of-day layout computed for the memory asked), then through
//! domctl: an empty paused domain, its vCPU count and memory ceiling, its memory populated on
//! its behalf, the image written by the shared builder (`pvbuild`) through foreign mappings
//! of its frames, its bootstrap L4 pinned, its XenStore and console event channels offered
//! to dom0 and pages granted to dom0 (refs 1 and 0), and vCPU 0's state set with CR3 on that
//! L4. It is left paused: the caller connects its console and XenStore, then unpauses it.
//!
//! A failure at any step is one message naming the domain and the problem; a domain made
//! before it is destroyed, and every mapping dom0 made is gone by then, so all its frames
//! come back.
//!
//! Where a bzImage is unpacked: into dom0's own spare memory (`memory::own`), as Xen's
//! toolstack unpacks in dom0: the guest's memory then only ever holds what the guest gets,
//! a guest too small to hold its kernel twice still builds, and the 100 MiB or so that
//! Debian's kernel needs (its 66 MB ELF and its 32 MiB XZ dictionary) are dom0's, reused
//! build after build, never taken from the free pool (dom0_mem is 256 MiB by default for it).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::grant_table::entry::{GTF_PERMIT_ACCESS, GrantEntryV1};
use hypercall_abi::vcpu::{VGCF_IN_KERNEL, VGCF_ONLINE, VcpuGuestContext};
use hypercall_abi::{DomId, EvtchnPort, GrantFrame, Mfn, PAddr, guest};
use pv_guest::{println, time};
use pvbuild::bzimage::{self, Payload};
use pvbuild::{BuildParams, Built, GuestMemory, KernelImage, Layout};
use zerocopy::{FromZeros, IntoBytes};

use super::archive::Archive;
use super::config::{DomainConfig, Image};
use super::ctl;
use super::memory::{self, Region};
use super::on_disk;
use crate::drivers::virtio::blk::Disk;

/// Flat selectors a PV kernel starts with (Xen's FLAT_KERNEL_CS64 / SS64).
const KERNEL_CS: u16 = hypercall_abi::arch::FLAT_KERNEL_CS64;
const KERNEL_SS: u16 = hypercall_abi::arch::FLAT_RING3_SS64;

/// Bytes of an image: in dom0's ramdisk, or copied from a boot module into dom0's memory.
enum Bytes {
    Archived(&'static [u8]),
    Copied(Region, usize),
}

impl Bytes {
    fn get(&self) -> &[u8] {
        match self {
            Bytes::Archived(b) => b,
            Bytes::Copied(r, len) => &r.bytes()[..*len],
        }
    }
}

/// Reads an image from where its configuration says: a file of dom0's ramdisk, else of an
/// archive on one of its disks (`on_disk`), or a boot module.
fn load(
    archive: Option<&Archive<'static>>,
    disks: &mut [Disk],
    image: &Image,
) -> Result<Bytes, String> {
    match image {
        Image::Archive(path) => {
            if let Some(b) = archive.and_then(|a| a.file(path)) {
                return Ok(Bytes::Archived(b));
            }
            match on_disk::find(disks, path)? {
                Some((disk, at)) => {
                    let (region, size) = on_disk::load(disks, disk, at)?;
                    Ok(Bytes::Copied(region, size))
                }
                None => Err(format!("no file {path} in dom0's ramdisk or on its disks")),
            }
        }
        Image::BootModule(index) => {
            let (size, _) =
                ctl::boot_module_info(*index).map_err(|e| format!("boot module {index}: {e:?}"))?;
            let mut r = memory::own(size.div_ceil(4096).max(1))?;
            let mut at = 0u64;
            while at < size {
                let buf = &mut r.bytes_mut()[at as usize..size as usize];
                let (_, n) = ctl::boot_module_read(*index, at, buf)
                    .map_err(|e| format!("boot module {index}: {e:?}"))?;
                if n == 0 {
                    return Err(format!("boot module {index} ends at {at} of {size} bytes"));
                }
                at += n;
            }
            Ok(Bytes::Copied(r, size as usize))
        }
    }
}

/// The kernel ELF: the image itself, or what its bzImage payload unpacks to.
enum Elf {
    Given(Bytes, core::ops::Range<usize>),
    Unpacked(Region, usize),
}

impl Elf {
    fn get(&self) -> &[u8] {
        match self {
            Elf::Given(b, range) => &b.get()[range.clone()],
            Elf::Unpacked(r, len) => &r.bytes()[..*len],
        }
    }
}

fn kernel_elf(name: &str, kernel: Bytes) -> Result<Elf, String> {
    let k = kernel.get();
    if !bzimage::is_bzimage(k) {
        let len = k.len();
        return Ok(Elf::Given(kernel, 0..len));
    }
    let bad = |e: pvbuild::ImageError| format!("bad kernel image: {e}");
    let (stream, unpacked_len, dict_len) = match bzimage::payload(k).map_err(bad)? {
        Payload::Elf(elf) => {
            let range = elf.as_ptr() as usize - k.as_ptr() as usize..;
            let range = range.start..range.start + elf.len();
            return Ok(Elf::Given(kernel, range));
        }
        Payload::Xz { stream, unpacked_len, dict_len } => (stream, unpacked_len, dict_len),
    };
    let t0 = time::now_ns();
    let mut out = memory::own((unpacked_len as u64).div_ceil(4096))
        .map_err(|e| format!("no memory to unpack the kernel: {e}"))?;
    {
        let mut dict = memory::own((dict_len as u64).div_ceil(4096))
            .map_err(|e| format!("no memory for the kernel's XZ dictionary: {e}"))?;
        bzimage::unpack_xz(stream, &mut out.bytes_mut()[..unpacked_len], dict.bytes_mut())
            .map_err(bad)?;
    }
    println!(
        "dom0: {name}: bzImage: {} KiB of XZ unpacked to a {} KiB ELF ({} KiB dictionary) in {} ms",
        stream.len() / 1024,
        unpacked_len / 1024,
        dict_len / 1024,
        (time::now_ns() - t0) / 1_000_000
    );
    Ok(Elf::Unpacked(out, unpacked_len))
}

/// The new domain's memory as the builder sees it: its P2M (the machine frames populate
/// gave, in dom0's memory), its frames mapped into dom0 a 2 MiB chunk at a time, the last few
/// chunks kept mapped.
struct ForeignMemory {
    dom: DomId,
    p2m: Region,
    nr_pages: u64,
    chunks: Vec<(u64, Region)>,
}

const CHUNK_PAGES: u64 = 512;
const CHUNKS_KEPT: usize = 8;

impl ForeignMemory {
    fn p2m(&self) -> &[u64] {
        &self.p2m.words()[..self.nr_pages as usize]
    }

    fn chunk(&mut self, no: u64) -> Result<&mut Region, String> {
        if let Some(i) = self.chunks.iter().position(|(n, _)| *n == no) {
            let c = self.chunks.remove(i);
            self.chunks.push(c);
        } else {
            if self.chunks.len() >= CHUNKS_KEPT {
                self.chunks.remove(0);
            }
            let first = no * CHUNK_PAGES;
            let last = (first + CHUNK_PAGES).min(self.nr_pages);
            let mfns: Vec<u64> = self.p2m()[first as usize..last as usize].to_vec();
            let r = memory::foreign(self.dom, &mfns)?;
            self.chunks.push((no, r));
        }
        Ok(&mut self.chunks.last_mut().expect("pushed above").1)
    }
}

impl GuestMemory for ForeignMemory {
    fn nr_pages(&self) -> u64 {
        self.nr_pages
    }
    fn mfn(&self, pfn: u64) -> Mfn {
        assert!(pfn < self.nr_pages, "the builder asked for pfn {pfn} of {}", self.nr_pages);
        Mfn(self.p2m()[pfn as usize])
    }
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        // The builder writes only inside the layout it computed for these pages, so a pfn out
        // of range is a bug; a mapping refused by the hypervisor is one too (the frames are
        // the domain's, which dom0 may map), so both stop dom0 with the reason.
        let c = self.chunk(pfn / CHUNK_PAGES).unwrap_or_else(|e| panic!("foreign map: {e}"));
        let at = ((pfn % CHUNK_PAGES) * 4096) as usize + offset;
        c.bytes_mut()[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// What was built.
pub struct Created {
    pub dom: DomId,
    pub built: Built,
}

/// Destroys the domain unless the build got to the end.
struct DomainGuard(Option<DomId>);

impl Drop for DomainGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0 {
            let _ = ctl::destroy(d);
            ctl::wait_gone(d);
        }
    }
}

/// Builds `cfg` into a new paused domain. Errors are one line: "<what>: <why>".
pub fn build(
    archive: Option<&Archive<'static>>,
    disks: &mut [Disk],
    cfg: &DomainConfig,
) -> Result<Created, String> {
    let kernel = load(archive, disks, &cfg.kernel).map_err(|e| format!("kernel: {e}"))?;
    let ramdisk = match &cfg.ramdisk {
        Some(r) => Some(load(archive, disks, r).map_err(|e| format!("ramdisk: {e}"))?),
        None => None,
    };
    let rd: &[u8] = ramdisk.as_ref().map_or(&[], Bytes::get);
    let elf = kernel_elf(&cfg.name, kernel)?;
    let img = pvbuild::image::parse(elf.get()).map_err(|e| format!("bad kernel image: {e}"))?;
    let nr_pages = cfg.memory_kib / 4;
    Layout::compute(&img, nr_pages, rd.len() as u64, true)
        .map_err(|e| format!("memory = {} MiB: {e}", cfg.memory_kib >> 10))?;

    let dom = ctl::create_named(&cfg.name).map_err(|e| format!("createdomain: {e:?}"))?;
    let mut guard = DomainGuard(Some(dom));
    let built = populate_and_build(dom, cfg, &img, elf.get(), rd, nr_pages)?;
    guard.0 = None;
    log_layout(&cfg.name, &built);
    Ok(Created { dom, built })
}

fn populate_and_build(
    dom: DomId,
    cfg: &DomainConfig,
    img: &KernelImage,
    elf: &[u8],
    ramdisk: &[u8],
    nr_pages: u64,
) -> Result<Built, String> {
    ctl::max_vcpus(dom, cfg.vcpus).map_err(|e| format!("max_vcpus: {e:?}"))?;
    ctl::max_mem(dom, cfg.maxmem_kib).map_err(|e| format!("max_mem: {e:?}"))?;
    if (cfg.weight, cfg.cap) != (256, 0) {
        ctl::sched_set(dom, cfg.weight as u16, cfg.cap as u16)
            .map_err(|e| format!("scheduler parameters: {e:?}"))?;
    }
    let mut p2m = memory::own((nr_pages * 8).div_ceil(4096))?;
    let frames = &mut p2m.words_mut()[..nr_pages as usize];
    for (pfn, f) in frames.iter_mut().enumerate() {
        *f = pfn as u64;
    }
    let got = ctl::populate_into(dom, frames).map_err(|e| format!("populate_physmap: {e:?}"))?;
    if got != nr_pages {
        return Err(format!(
            "out of memory: {} MiB asked, the machine had {} MiB to give",
            nr_pages >> 8,
            got >> 8
        ));
    }
    let evtchn = |what: &str| {
        guest::evtchn_alloc_unbound_in(dom, DomId(0))
            .map_err(|e| format!("{what} event channel: {e:?}"))
    };
    // XenStore first, then the console: dom0's services find them in that order.
    let store_evtchn: EvtchnPort = evtchn("XenStore")?;
    let console_evtchn: EvtchnPort = evtchn("console")?;
    let info = ctl::domain_info(dom).map_err(|e| format!("getdomaininfo: {e:?}"))?;
    let params = BuildParams {
        cmdline: &cfg.cmdline,
        flags: 0,
        shared_info: PAddr(info.shared_info_frame << 12),
        store_evtchn: Some(store_evtchn),
        console_evtchn: Some(console_evtchn),
    };
    let built = {
        let mut mem = ForeignMemory { dom, p2m, nr_pages, chunks: Vec::new() };
        pvbuild::build(&mut mem, img, elf, ramdisk, &params).map_err(|e| format!("{e}"))?
        // Every mapping of its frames goes here, before its tables are pinned.
    };
    ctl::pin_l4(dom, built.l4).map_err(|e| format!("bootstrap page tables refused: {e:?}"))?;
    if let (Some(console), Some(store)) = (built.console_mfn, built.store_mfn) {
        seed_grants(dom, console, store)?;
    }
    let mut ctx = Box::new(VcpuGuestContext::new_zeroed());
    ctx.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    let u = &mut ctx.user_regs;
    u.rip = built.entry;
    u.rsp = built.stack_top;
    u.rsi = built.start_info;
    u.rflags = 1 << 9;
    u.cs = KERNEL_CS;
    (u.ss, u.ds, u.es) = (KERNEL_SS, KERNEL_SS, KERNEL_SS);
    ctx.kernel_ss = u64::from(KERNEL_SS);
    ctx.kernel_sp = built.stack_top;
    ctx.ctrlreg[3] = built.l4.0 << 12;
    ctl::set_vcpu_context(dom, &ctx).map_err(|e| format!("setvcpucontext: {e:?}"))?;
    Ok(built)
}

/// Grants dom0 the console page (ref 0) and the XenStore page (ref 1), writing the domain's
/// grant table through a foreign mapping of its first frame, as Xen's toolstack seeds it.
fn seed_grants(dom: DomId, console: Mfn, store: Mfn) -> Result<(), String> {
    let mut frames = [Mfn(0)];
    guest::gnttab_setup_table(dom, &mut frames).map_err(|e| format!("grant table: {e:?}"))?;
    let mut table = memory::foreign(dom, &[frames[0].0])?;
    for (gref, mfn) in [(0usize, console), (1, store)] {
        let frame = GrantFrame(u32::try_from(mfn.0).map_err(|_| "grant frame over 32 bits")?);
        let e = GrantEntryV1 { flags: GTF_PERMIT_ACCESS, domid: DomId(0), frame };
        table.bytes_mut()[gref * 8..gref * 8 + 8].copy_from_slice(e.as_bytes());
    }
    Ok(())
}

/// What the builder made, where: the line a bring-up reads first.
fn log_layout(name: &str, b: &Built) {
    println!("dom0: {name}: layout: {}", pvbuild::describe(b));
}
