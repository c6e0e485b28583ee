//! The boot sequence, from the first Rust instruction to the first guest: command line and
//! log, memory map, the hypervisor's page tables, frame table and heap, processor tables,
//! time, then dom0; the domUs named on the command line are recorded for dom0's toolstack,
//! which builds them (`domain::bootdomus`). Ends by entering the first guest
//! (`traps::exit::start`); a panic ends here too (`panic`).

use alloc::vec::Vec;

use hypercall_abi::Mfn;
use hypercall_abi::memory::E820Entry;
use log::{LevelFilter, error, info};

use super::cmdline;
use super::memmap::{self, FreeRanges, Range};
use super::multiboot::{self, BootInfo};
use super::options::{CMDLINE, DomuSpec, Options, command_line, parse_options};
use crate::arch::{apic, cpu, ioapic, irq, paging, percpu::PerCpu, power, time};
use crate::console::logging;
use crate::domain::{bootdomus, build};
use crate::mm::{heap, machine};
use crate::sched::credit::Params;
use crate::sched::{self, clock};
use crate::traps::{exit, fatal};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The heap's boot region, for the hypervisor's own structures (domains, vCPU contexts, event
/// channels, grant bookkeeping): a few KiB per domain. The heap grows past it at run time
/// (`mm::heap`), so this is a starting size, not a ceiling.
const HEAP_SIZE: u64 = 256 << 10;
/// Free memory guests cannot take, kept for the heap's growth and the hypervisor's tables
/// (2 MiB): room for the records of a few hundred more domains when guests hold all the rest.
const HV_RESERVE_FRAMES: u64 = 512;

static CPU0: PerCpu = PerCpu::new(0);

pub fn start(mbi: u64) -> ! {
    heap::init_early_heap();
    logging::init(LevelFilter::Info);
    time::mark_boot();
    let boot = match multiboot::parse(&machine::BootPhys, mbi) {
        Ok(b) => b,
        Err(e) => {
            error!("cannot read the multiboot information: {e:?}");
            power::exit(power::ExitCode::HypervisorFailure);
        }
    };
    // QEMU passes the image's name as the first word, as GRUB does.
    let line = match boot.cmdline.split_once(' ') {
        Some((first, rest)) if !first.contains('=') => rest.trim(),
        _ if !boot.cmdline.contains('=') && !boot.cmdline.contains(' ') => "",
        _ => boot.cmdline.as_str(),
    };
    CMDLINE.call_once(|| line.into());
    let opts = parse_options(line);
    log::set_max_level(opts.loglvl);
    info!("xen-core {VERSION}: a Xen-compatible PV hypervisor (Xen ABI 3.0, x86_64)");
    info!("command line: {}", command_line());
    print_boot_info(&boot);
    crate::mm::machine::MACHINE_MEMORY_MAP.call_once(|| {
        boot.memory_map
            .iter()
            .map(|r| E820Entry { addr: r.start, size: r.len, kind: r.kind })
            .collect()
    });

    let (free, ram_end, hv_mem) = setup_memory(&boot);
    let _ = ram_end;
    let (smep_hw, smap_hw) = cpu::has_smep_smap();
    let stack_top = crate::arch::boot::boot_stack_top();
    CPU0.stack_top.store(stack_top, core::sync::atomic::Ordering::Relaxed);
    cpu::init_boot_cpu(
        &CPU0,
        stack_top,
        crate::arch::entry::idt_stubs_addr(),
        opts.smep && smep_hw,
        opts.smap && smap_hw,
    );
    crate::arch::uaccess::set_smap(opts.smap && smap_hw);
    crate::arch::entry::FLOOR_PROBE.store(opts.floor_probe, core::sync::atomic::Ordering::Relaxed);
    crate::hypercall::table::TRACE.store(opts.hctrace, core::sync::atomic::Ordering::Relaxed);
    irq::mask_legacy_pic();
    let hz = time::calibrate();
    let apic_hz = apic::init();
    let pins = ioapic::init(apic::id());
    crate::event::irq::init(pins);
    info!(
        "TSC {} MHz, APIC timer {} kHz, IOAPIC {} pins; SMEP {}, SMAP {}",
        hz / 1_000_000,
        apic_hz / 1000,
        pins,
        opts.smep && smep_hw,
        opts.smap && smap_hw
    );
    hand_over_free_memory(&free, &boot);
    machine::with_mm(|mm| mm.set_hv_reserve(HV_RESERVE_FRAMES));
    heap::fill_reserve();

    sched::set_slice(opts.slice_ns);
    let wall = clock::init();
    info!("wallclock {wall} s since the epoch; scheduler slice {} ms", opts.slice_ns / 1_000_000);
    if let Err(e) = build_dom0(&boot, &opts) {
        error!("cannot build dom0: {e}");
        power::exit(power::ExitCode::HypervisorFailure);
    }
    let keep = record_domus(&boot, &opts.domus);
    // dom0's modules were copied into it: their memory is free RAM again, but for the images
    // of boot domUs, which dom0's toolstack builds (and builds again when they reboot).
    machine::release_modules(boot.modules.iter().map(|m| (m.start, m.end)), &keep);
    let (heap_used, _, _) = heap::heap_stats();
    let free_frames = machine::with_mm(|mm| mm.free_frames());
    info!(
        "hypervisor memory: {} KiB (frame table {} KiB, M2P {} KiB, heap {} KiB ({} KiB used), \
         page tables {} KiB, image {} KiB); {} MiB free",
        hv_mem.total() / 1024,
        hv_mem.frame_table / 1024,
        hv_mem.m2p / 1024,
        hv_mem.heap / 1024,
        heap_used / 1024,
        hv_mem.page_tables / 1024,
        hv_mem.image / 1024,
        free_frames * 4 / 1024
    );
    info!("starting dom0");
    exit::start()
}

/// What the hypervisor took for itself at boot.
#[derive(Clone, Copy, Debug, Default)]
struct HvMemory {
    frame_table: u64,
    m2p: u64,
    heap: u64,
    page_tables: u64,
    image: u64,
}

impl HvMemory {
    fn total(&self) -> u64 {
        self.frame_table + self.m2p + self.heap + self.page_tables + self.image
    }
}

/// Gives every free frame to the frame allocator, and marks the I/O frames among those the
/// frame table covers (the first MiB, the map's holes and reserved ranges) as `DOMID_IO`'s:
/// dom0 maps them as device or firmware memory (a PV Linux dom0 reads the BIOS and ACPI
/// tables there), as on Xen.
fn hand_over_free_memory(free: &FreeRanges, boot: &BootInfo) {
    let ram = FreeRanges::from_ram(usable_ram(boot));
    machine::with_mm(|mm| {
        let end = mm.nr_frames() * 4096;
        for r in memmap::io_ranges(&ram, end) {
            (r.start / 4096..r.end / 4096).for_each(|m| mm.mark_io(Mfn(m)));
        }
        for r in free.ranges() {
            mm.add_free(Mfn(r.start / 4096), Mfn(r.end / 4096));
        }
    });
}

/// The loader's usable RAM regions.
fn usable_ram(boot: &BootInfo) -> Vec<Range> {
    boot.memory_map
        .iter()
        .filter(|r| r.kind == 1)
        .map(|r| Range { start: r.start, end: r.start.saturating_add(r.len) })
        .collect()
}

fn build_dom0(boot: &BootInfo, opts: &Options) -> Result<(), alloc::string::String> {
    let kernel_mod =
        boot.modules.first().ok_or("no dom0 kernel: pass it as the first -initrd module")?;
    let (_, args) = cmdline::split_module_cmdline(&kernel_mod.cmdline);
    let kernel = machine::module_bytes(kernel_mod.start, kernel_mod.end);
    // Module 1 is dom0's ramdisk unless a domU claims it.
    let ramdisk = match boot.modules.get(1) {
        Some(m) if !opts.domus.iter().any(|d| d.module == 1 || d.ramdisk == Some(1)) => {
            machine::module_bytes(m.start, m.end)
        }
        _ => &[][..],
    };
    let spec = build::DomainSpec {
        name: "Domain-0".into(),
        kernel,
        ramdisk,
        cmdline: args,
        mem_bytes: opts.dom0_mem,
        sched: Params { weight: opts.dom0_weight, cap_pct: 0 },
        force_features: &opts.force_features,
    };
    let (_, built) = build::create_dom0(&spec)?;
    info!(
        "dom0: kernel {:#x}-{:#x}, entry {:#x}, start_info {:#x}, {} MiB, ramdisk {} KiB",
        built.layout.kernel.0,
        built.layout.kernel.1,
        built.entry,
        built.start_info,
        opts.dom0_mem >> 20,
        ramdisk.len() / 1024
    );
    Ok(())
}

/// Records the domUs named on the command line for dom0's toolstack, with the modules they
/// name (a bad module number is reported here and the domU left out); returns the modules'
/// byte ranges, to keep.
fn record_domus(boot: &BootInfo, specs: &[DomuSpec]) -> Vec<(u64, u64)> {
    let mut domus = Vec::new();
    let mut modules: Vec<bootdomus::KeptModule> = Vec::new();
    for spec in specs {
        let usable = |i: usize| i != 0 && i < boot.modules.len();
        let bad = [Some(spec.module), spec.ramdisk].into_iter().flatten().find(|&i| !usable(i));
        if let Some(i) = bad {
            error!("domU {}: no module {i} for it (module 0 is dom0's kernel)", spec.name);
            continue;
        }
        for i in [Some(spec.module), spec.ramdisk].into_iter().flatten() {
            if !modules.iter().any(|k| k.index == i) {
                let m = &boot.modules[i];
                let (_, args) = cmdline::split_module_cmdline(&m.cmdline);
                modules.push(bootdomus::KeptModule {
                    index: i,
                    start: m.start,
                    end: m.end,
                    args: args.into(),
                });
            }
        }
        info!(
            "domU {}: module {}{}, {} MiB, weight {}, cap {}%: for dom0's toolstack to build",
            spec.name,
            spec.module,
            spec.ramdisk
                .map_or(alloc::string::String::new(), |r| alloc::format!(", ramdisk module {r}")),
            spec.mem >> 20,
            spec.weight,
            spec.cap
        );
        domus.push(bootdomus::BootDomu {
            name: spec.name.clone(),
            kernel_module: spec.module,
            ramdisk_module: spec.ramdisk,
            mem_bytes: spec.mem,
            weight: spec.weight,
            cap: spec.cap,
        });
    }
    let keep = modules.iter().map(|m| (m.start, m.end)).collect();
    bootdomus::record(domus, modules);
    keep
}

fn print_boot_info(boot: &BootInfo) {
    info!("memory map:");
    for r in &boot.memory_map {
        let kind = if r.kind == 1 { "usable" } else { "reserved" };
        info!("  {:#014x} - {:#014x} {kind}", r.start, r.start + r.len);
    }
    for (i, m) in boot.modules.iter().enumerate() {
        info!(
            "module {i}: {:#x} - {:#x} ({} KiB) '{}'",
            m.start,
            m.end,
            (m.end - m.start) / 1024,
            m.cmdline
        );
    }
}

/// Builds the hypervisor's tables and heap; returns the free RAM left, the end of RAM and
/// what the hypervisor took.
fn setup_memory(boot: &BootInfo) -> (FreeRanges, u64, HvMemory) {
    let ram = usable_ram(boot);
    let mut free = FreeRanges::from_ram(ram.iter().copied());
    let ram_end = free.end();
    free.reserve(0, 1 << 20);
    let (img_start, img_end) = paging::image_bounds();
    free.reserve(paging::image_phys(img_start), paging::image_phys(img_end));
    for m in &boot.modules {
        free.reserve(m.start, m.end);
    }
    let nr_frames = ram_end / 4096;
    let m2p_len = nr_frames * 8;
    let m2p_len = m2p_len.div_ceil(2 << 20) * (2 << 20);
    let m2p_pa = free.take(m2p_len, 2 << 20, u64::MAX).expect("no memory for the M2P table");
    let before_tables = free.total();
    let tables = paging::build(&mut free, ram_end, m2p_pa, m2p_len);
    let page_tables = before_tables - free.total();
    paging::load_cr3(tables.idle_l4);
    paging::set_idle_l4(tables.idle_l4);
    machine::direct_map_is_up();
    machine::set_ram_frames(nr_frames);
    let heap_pa = free.take(HEAP_SIZE, 4096, u64::MAX).expect("no memory for the heap");
    heap::init_heap(heap_pa, HEAP_SIZE);
    let ft_len = nr_frames * core::mem::size_of::<crate::mm::FrameInfo>() as u64;
    let ft_pa = free.take(ft_len, 4096, u64::MAX).expect("no memory for the frame table");
    machine::init_mm(ft_pa, m2p_pa, nr_frames, tables.xen_l4);
    let hv_mem = HvMemory {
        frame_table: ft_len.div_ceil(4096) * 4096,
        m2p: m2p_len,
        heap: HEAP_SIZE,
        page_tables,
        image: img_end - img_start,
    };
    (free, ram_end, hv_mem)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    logging::enter_panic_mode();
    error!("hypervisor panic: {info}");
    fatal::stack_trace(0, crate::arch::boot::current_frame_pointer());
    power::exit(power::ExitCode::HypervisorFailure)
}
