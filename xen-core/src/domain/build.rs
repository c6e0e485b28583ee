//! Creating a domain: dom0 from its PV kernel image inside the hypervisor (allocate its
//! memory, run the builder (the `pvbuild` crate) over it, have the validator type the
//! bootstrap page tables, and make vCPU 0 ready at the entry point), or an empty one for the
//! toolstack (`domctl` createdomain), which builds every domU itself with the same builder,
//! as Xen's does. Like `lifecycle`, it sits above the subsystems it registers the new domain
//! with (scheduler, grants, time).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hypercall_abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};
use hypercall_abi::{DomId, Mfn, PAddr};
use spin::Mutex;

use crate::arch::cpu::{GUEST_CS64, GUEST_DS};
use crate::arch::time;
use crate::console::console_io::MAX_CONSOLE_LINE;
use crate::console::ratelimit::RateLimit;
use crate::domain::{self, DomState, Domain, VI_UPCALL_MASK, Vcpu, VcpuContext};
use crate::event::ports::{EvtchnTable, MAX_PORTS_DOM0, MAX_PORTS_DOMU};
use crate::grant;
use crate::grant::table::{GrantTable, MAX_MAPS_DOM0, MAX_MAPS_DOMU};
use crate::mm::PageType;
use crate::mm::machine::{self, DirectPageMem, with_mm};
use crate::mm::quota::{DOM0_HEAP_QUOTA, DOMU_HEAP_QUOTA, HeapQuota};
use crate::mm::scratch::Scratch;
use crate::sched::credit::Params;
use crate::sched::{self, clock};
use pvbuild::bzimage::{self, Payload};
use pvbuild::{BuildParams, GuestMemory};

/// What to build: dom0.
pub struct DomainSpec<'a> {
    pub name: String,
    /// A PV kernel: an ELF, or a Linux bzImage (unpacked into scratch memory first).
    pub kernel: &'a [u8],
    pub ramdisk: &'a [u8],
    pub cmdline: &'a str,
    pub mem_bytes: u64,
    pub sched: Params,
    /// Required image features to accept although the hypervisor lacks them (the
    /// `force_features=` option: bringing a kernel up, never production).
    pub force_features: &'a [String],
}

/// The kernel ELF: the image itself, or what a bzImage unpacked to.
enum KernelElf<'a> {
    Given(&'a [u8]),
    Unpacked(Scratch),
}

impl KernelElf<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            KernelElf::Given(b) => b,
            KernelElf::Unpacked(s) => s,
        }
    }
}

/// The ELF inside `spec.kernel`. A bzImage's XZ payload is unpacked into scratch memory
/// (tens of MB: never the heap); its dictionary goes back before the domain takes memory.
fn kernel_elf<'a>(spec: &DomainSpec<'a>) -> Result<KernelElf<'a>, String> {
    if !bzimage::is_bzimage(spec.kernel) {
        return Ok(KernelElf::Given(spec.kernel));
    }
    let name = &spec.name;
    let payload =
        bzimage::payload(spec.kernel).map_err(|e| format!("{name}: bad kernel image: {e}"))?;
    let (stream, unpacked_len, dict_len) = match payload {
        Payload::Elf(elf) => return Ok(KernelElf::Given(elf)),
        Payload::Xz { stream, unpacked_len, dict_len } => (stream, unpacked_len, dict_len),
    };
    let t0 = time::now_ns();
    let scratch = |len: usize, what: &str| {
        Scratch::new(len).map_err(|e| format!("{name}: no memory for the kernel's {what}: {e:?}"))
    };
    let mut out = scratch(unpacked_len, "unpacked image")?;
    {
        let mut dict = scratch(dict_len, "XZ dictionary")?;
        bzimage::unpack_xz(stream, &mut out, &mut dict)
            .map_err(|e| format!("{name}: bad kernel image: {e}"))?;
    }
    log::info!(
        "{name}: bzImage: {} KiB of XZ unpacked to a {} KiB ELF ({} KiB dictionary) in {} ms",
        stream.len() / 1024,
        unpacked_len / 1024,
        dict_len / 1024,
        (time::now_ns() - t0) / 1_000_000
    );
    Ok(KernelElf::Unpacked(out))
}

/// Where the new domain's memory is, for the builder.
/// The new domain's pfn -> mfn table while it is built. It lives in hypervisor frames (512
/// entries each) rather than the heap: the heap is 1 MiB and a 1 GiB domain's table alone is
/// 2 MiB. Only the list of those frames (8 bytes per 2 MiB of guest) is on the heap. The
/// frames go back when the build is over.
struct Frames {
    chunks: Vec<Mfn>,
    len: u64,
}

const P2M_PER_FRAME: u64 = 512;

impl Frames {
    fn new(nr_pages: u64) -> Option<Frames> {
        let n = usize::try_from(nr_pages.div_ceil(P2M_PER_FRAME)).ok()?;
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(n).ok()?;
        let mut f = Frames { chunks, len: 0 };
        for _ in 0..n {
            // On failure `f` drops and returns what it took.
            f.chunks.push(with_mm(|mm| mm.alloc_xen_frame())?);
        }
        Some(f)
    }

    /// Appends the next pfn's frame (there is room for the `nr_pages` given to `new`).
    fn push(&mut self, mfn: Mfn) {
        let chunk = self.chunks[(self.len / P2M_PER_FRAME) as usize];
        machine::frame_word(chunk, (self.len % P2M_PER_FRAME) as usize)
            .store(mfn.0, Ordering::Relaxed);
        self.len += 1;
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        with_mm(|mm| self.chunks.iter().for_each(|&f| mm.free_xen_frame(f)));
    }
}

impl GuestMemory for Frames {
    fn nr_pages(&self) -> u64 {
        self.len
    }
    fn mfn(&self, pfn: u64) -> Mfn {
        assert!(pfn < self.len, "the builder asked for pfn {pfn} of {}", self.len);
        let chunk = self.chunks[(pfn / P2M_PER_FRAME) as usize];
        Mfn(machine::frame_word(chunk, (pfn % P2M_PER_FRAME) as usize).load(Ordering::Relaxed))
    }
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        machine::write_frame(self.mfn(pfn), offset, bytes);
    }
}

/// Builds and registers dom0; it starts running at the next scheduling decision.
pub fn create_dom0(spec: &DomainSpec<'_>) -> Result<(Arc<Domain>, pvbuild::Built), String> {
    let elf = kernel_elf(spec)?;
    let forced: Vec<&str> = spec.force_features.iter().map(String::as_str).collect();
    let img = pvbuild::image::parse_forcing(elf.bytes(), &forced)
        .map_err(|e| format!("{}: bad kernel image: {e}", spec.name))?;
    // Say so where forcing let this image through.
    for f in &forced {
        let bit = hypercall_abi::version::feature_by_name(f.as_bytes()).unwrap_or(u32::MAX);
        let required = bit < 32 && img.features_required & (1 << bit) != 0;
        if required && !pvbuild::image::SUPPORTED_REQUIRED_FEATURES.contains(f) {
            log::warn!("{}: force_features: building it although {f} is not provided", spec.name);
        }
    }
    let nr_pages = spec.mem_bytes / 4096;
    let id = DomId(0);
    with_mm(|mm| mm.domain_create(id, nr_pages, true))
        .map_err(|e| format!("{}: {e:?}", spec.name))?;
    let result = populate(spec, &img, elf.bytes(), nr_pages);
    if result.is_err() {
        with_mm(|mm| {
            mm.domain_relinquish(&mut DirectPageMem, id, &[]);
            mm.domain_forget(id);
        });
    }
    result
}

fn populate(
    spec: &DomainSpec<'_>,
    img: &pvbuild::KernelImage,
    kernel: &[u8],
    nr_pages: u64,
) -> Result<(Arc<Domain>, pvbuild::Built), String> {
    let id = DomId(0);
    let mut p2m = Frames::new(nr_pages)
        .ok_or_else(|| format!("{}: no memory for the build's P2M table", spec.name))?;
    let t0 = time::now_ns();
    for pfn in 0..nr_pages {
        let mfn = with_mm(|mm| mm.domain_alloc(id))
            .map_err(|_| format!("{}: out of memory after {pfn} of {nr_pages} pages", spec.name))?;
        machine::zero_frame(mfn);
        with_mm(|mm| mm.set_m2p(mfn, pfn));
        p2m.push(mfn);
    }
    let shared_info =
        new_shared_info(id).map_err(|e| format!("{}: shared_info: {e:?}", spec.name))?;

    let quota = Arc::new(HeapQuota::new(DOM0_HEAP_QUOTA));
    let evtchn = EvtchnTable::new(id, 1, MAX_PORTS_DOM0, quota.clone())
        .map_err(|e| format!("{}: event channels: {e:?}", spec.name))?;
    let params = BuildParams {
        cmdline: spec.cmdline,
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        shared_info: PAddr(shared_info.0 << 12),
        store_evtchn: None,
        console_evtchn: None,
    };
    let mut frames = p2m;
    let built = pvbuild::build(&mut frames, img, kernel, spec.ramdisk, &params)
        .map_err(|e| format!("{}: {e}", spec.name))?;
    log::debug!("{}: memory and image ready in {} us", spec.name, (time::now_ns() - t0) / 1000);
    log_layout(&spec.name, &built);
    // The validator checks the builder's tables like any guest's. The L4 is pinned, as Xen's
    // builders leave it (Linux unpins it once on its own tables, and BUGs if that fails),
    // and it becomes CR3, which holds a type reference of its own.
    with_mm(|mm| {
        mm.pin(&mut DirectPageMem, built.l4, 4, id)?;
        mm.get_page_and_type(&mut DirectPageMem, built.l4, PageType::L4, id)
    })
    .map_err(|e| format!("{}: bootstrap page tables refused: {e:?}", spec.name))?;

    // vCPU 0 as Xen's builders start it: in kernel mode at the entry point, rsi = start_info,
    // on the boot stack, which is also the kernel stack until the guest names one.
    let mut ctx = VcpuContext::new();
    ctx.guest_table = built.l4;
    ctx.regs.rip = built.entry;
    ctx.regs.rsp = built.stack_top;
    ctx.regs.rsi = built.start_info;
    ctx.regs.rflags = 0x200;
    ctx.regs.cs = u64::from(GUEST_CS64);
    ctx.regs.ss = u64::from(GUEST_DS);
    ctx.kernel_ss = u64::from(GUEST_DS);
    ctx.kernel_sp = built.stack_top;
    let (d, vcpu) =
        new_domain(id, &spec.name, true, shared_info, nr_pages, evtchn, quota, ctx, spec.sched)
            .map_err(|e| format!("{}: records: {e:?}", spec.name))?;
    // vcpu_info's time is valid before the first instruction (Linux divides by its
    // tsc_to_system_mul straight away); every switch to the vCPU refreshes it.
    clock::publish(&vcpu);
    vcpu.is_up.store(true, core::sync::atomic::Ordering::Release);
    clock::publish_wallclock(&d);
    domain::insert(d.clone());
    sched::add_vcpu(vcpu);
    Ok((d, built))
}

/// What the builder made, where: the line a bring-up reads first.
fn log_layout(name: &str, b: &pvbuild::Built) {
    log::info!("{name}: layout: {}", pvbuild::describe(b));
}

/// A zeroed shared_info page shared with `id`, every vCPU's events masked (all 32 legacy
/// vcpu_infos, as Xen: a vCPU brought up later starts masked too).
fn new_shared_info(id: DomId) -> Result<Mfn, hypercall_abi::Errno> {
    let shared_info = with_mm(|mm| mm.alloc_shared_frame()).ok_or(hypercall_abi::Errno::ENOMEM)?;
    machine::zero_frame(shared_info);
    let vcpu_info_size = core::mem::size_of::<hypercall_abi::shared_info::VcpuInfo>();
    for i in 0..hypercall_abi::shared_info::MAX_VIRT_CPUS {
        machine::frame_byte(shared_info, i * vcpu_info_size + VI_UPCALL_MASK)
            .store(1, core::sync::atomic::Ordering::Relaxed);
    }
    with_mm(|mm| mm.share_xen_frame(shared_info, id))?;
    Ok(shared_info)
}

/// The Domain and its vCPU 0 (not yet up, not yet registered). Its records are charged to
/// `quota` first: a domain that cannot pay for them is not made (`ENOMEM`).
#[allow(clippy::too_many_arguments)]
fn new_domain(
    id: DomId,
    name: &str,
    privileged: bool,
    shared_info: Mfn,
    nr_pages: u64,
    evtchn: EvtchnTable,
    quota: Arc<HeapQuota>,
    ctx: VcpuContext,
    sched_params: Params,
) -> Result<(Arc<Domain>, Arc<Vcpu>), hypercall_abi::Errno> {
    let max_maps = if privileged { MAX_MAPS_DOM0 } else { MAX_MAPS_DOMU };
    let mut grants = GrantTable::new(quota.clone(), max_maps)?;
    // A table starts with one frame, as on Xen (`query_size` before `setup_table` says 1).
    grant::table::grow(id, &mut grants, 1).map_err(|_| hypercall_abi::Errno::ENOMEM)?;
    let record_charge = core::mem::size_of::<Domain>()
        + core::mem::size_of::<Vcpu>()
        + VcpuContext::HEAP_BYTES
        + MAX_CONSOLE_LINE
        + name.len();
    quota.charge(record_charge)?;
    let sched_id = sched::register(sched_params);
    let vcpu = Arc::new(Vcpu::new(0, id, sched_id, ctx, (shared_info, 0)));
    let d = Arc::new(Domain {
        id,
        name: name.to_string(),
        is_privileged: privileged,
        shared_info,
        nr_pages: AtomicU64::new(nr_pages),
        state: Mutex::new(DomState::Running),
        is_paused: AtomicBool::new(false),
        vcpus: alloc::vec![vcpu.clone()],
        vm_assist: AtomicU64::new(0),
        log_limit: Mutex::new(RateLimit::new(10, 500_000_000)),
        console_line: Mutex::new(Vec::with_capacity(MAX_CONSOLE_LINE)),
        // 100 lines at once, then 100 a second.
        console_limit: Mutex::new(RateLimit::new(100, 10_000_000)),
        evtchn: Mutex::new(evtchn),
        grants: Mutex::new(grants),
        quota,
        record_charge,
    });
    Ok((d, vcpu))
}

/// XEN_DOMCTL_createdomain: an empty, paused domain named `name`, with no memory yet (the
/// toolstack sets its ceiling with max_mem, populates its memory on its behalf and builds it)
/// and one vCPU that is not up until the toolstack sets its context.
pub fn create_empty(id: DomId, name: &str) -> Result<Arc<Domain>, hypercall_abi::Errno> {
    with_mm(|mm| mm.domain_create(id, 0, false))?;
    let shared_info = match new_shared_info(id) {
        Ok(s) => s,
        Err(e) => {
            with_mm(|mm| mm.domain_forget(id));
            return Err(e);
        }
    };
    let quota = Arc::new(HeapQuota::new(DOMU_HEAP_QUOTA));
    let made = EvtchnTable::new(id, 1, MAX_PORTS_DOMU, quota.clone()).and_then(|evtchn| {
        new_domain(
            id,
            name,
            false,
            shared_info,
            0,
            evtchn,
            quota,
            VcpuContext::new(),
            Params::default(),
        )
    });
    let (d, vcpu) = match made {
        Ok(x) => x,
        Err(e) => {
            with_mm(|mm| {
                mm.domain_relinquish(&mut DirectPageMem, id, &[]);
                mm.domain_forget(id);
            });
            return Err(e);
        }
    };
    // Paused until the toolstack has built it and connected its console and XenStore, as on
    // Xen, so nothing it prints is lost.
    d.is_paused.store(true, core::sync::atomic::Ordering::Release);
    clock::publish_wallclock(&d);
    domain::insert(d.clone());
    sched::add_vcpu(vcpu);
    Ok(d)
}
