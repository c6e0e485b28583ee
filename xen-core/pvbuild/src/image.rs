//! Reading a Xen PV kernel image: an ELF64 x86_64 executable with Xen's ELF notes, found in
//! `PT_NOTE` segments and in `SHT_NOTE` sections (some kernels carry only one of the two).
//! Everything in the file is a claim: offsets, sizes and addresses are checked for overflow
//! and against the file's length, and a bad image is an [`ImageError`] naming what is wrong.
//! (A Linux `bzImage` is unpacked to this ELF first: `bzimage`.)
//!
//! Which required features (`!name` in the FEATURES note) an image may ask for is decided here
//! and only here: [`SUPPORTED_REQUIRED_FEATURES`], with the one switch
//! [`EMULATES_WRITABLE_PAGE_TABLES`] that Linux waits on.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_EXEC, PT_LOAD, PT_NOTE, SHT_NOTE};
use elf::endian::LittleEndian;
use hypercall_abi::elfnote::{self, NoteIter};

/// Why an image cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    NotElf(String),
    NotX86_64,
    NotExecutable,
    NoLoadSegments,
    BadSegment(usize),
    NoXenNotes,
    BadNote(&'static str),
    UnsupportedLoader,
    UnsupportedXenVersion,
    RequiredFeature(String),
    BadAddress(&'static str),
    /// A Linux bzImage whose setup header or payload is malformed.
    BadBzImage(&'static str),
    /// A bzImage payload compressed with something other than XZ.
    UnsupportedCompression(&'static str),
    /// The XZ payload does not decode (truncated, corrupt, or not as declared).
    Xz(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotElf(why) => write!(f, "not an ELF image ({why})"),
            ImageError::NotX86_64 => write!(f, "not an x86_64 ELF image"),
            ImageError::NotExecutable => write!(f, "ELF image is not an executable (ET_EXEC)"),
            ImageError::NoLoadSegments => write!(f, "ELF image has no loadable segments"),
            ImageError::BadSegment(i) => {
                write!(f, "ELF segment {i} lies outside the file or overflows")
            }
            ImageError::NoXenNotes => write!(f, "no Xen ELF notes: not a Xen PV kernel"),
            ImageError::BadNote(which) => write!(f, "malformed Xen ELF note {which}"),
            ImageError::UnsupportedLoader => {
                write!(
                    f,
                    "image is for neither the generic loader nor Linux (LOADER/GUEST_OS notes)"
                )
            }
            ImageError::UnsupportedXenVersion => write!(f, "XEN_VERSION note is not \"xen-3.0\""),
            ImageError::RequiredFeature(name) => {
                write!(f, "image requires unsupported feature {name}")
            }
            ImageError::BadAddress(what) => write!(f, "image {what} is out of range"),
            ImageError::BadBzImage(why) => write!(f, "bad bzImage: {why}"),
            ImageError::UnsupportedCompression(what) => write!(
                f,
                "bzImage payload is {what}-compressed; only XZ (and uncompressed ELF) is supported"
            ),
            ImageError::Xz(why) => write!(f, "bzImage XZ payload does not decode: {why}"),
        }
    }
}

/// A loadable segment: file bytes `[offset, offset + filesz)` go to physical-in-image address
/// `paddr`, followed by `memsz - filesz` zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub paddr: u64,
}

/// What the builder needs from a kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    pub entry: u64,
    pub virt_base: u64,
    /// Virtual address of the first and one past the last loaded byte.
    pub virt_kstart: u64,
    pub virt_kend: u64,
    /// Where the hypervisor fills in the hypercall stubs, if the kernel asked.
    pub hypercall_page: Option<u64>,
    pub segments: Vec<Segment>,
    /// `virt = paddr + virt_offset`.
    pub virt_offset: u64,
    pub guest_os: String,
    /// The kernel takes a ramdisk outside its initial mapping, named by pfn (MOD_START_PFN).
    pub mod_start_pfn: bool,
    /// Where the kernel wants its P2M list mapped, outside the initial mapping (INIT_P2M):
    /// page aligned and below `virt_base`, else ignored, as Xen does.
    pub init_p2m: Option<u64>,
    /// `XENFEAT_*` bits the kernel supports (FEATURES string and SUPPORTED_FEATURES bitmap).
    pub features_supported: u32,
    /// `XENFEAT_*` bits the kernel requires (`!` in FEATURES); each one was accepted.
    pub features_required: u32,
}

/// Whether writes to a guest's pinned page tables are emulated (Xen's "writable page tables",
/// which every Linux PV kernel requires with `!writable_page_tables`): `traps::ptwr` does.
/// Were it false, such kernels would be refused with [`ImageError::RequiredFeature`].
pub const EMULATES_WRITABLE_PAGE_TABLES: bool = true;

/// Features (Xen's `features.h` names) this hypervisor honours when a kernel requires them
/// with a leading `!` in its FEATURES note.
pub const SUPPORTED_REQUIRED_FEATURES: &[&str] = if EMULATES_WRITABLE_PAGE_TABLES {
    &["writable_descriptor_tables", "pae_pgdir_above_4gb", "writable_page_tables"]
} else {
    &["writable_descriptor_tables", "pae_pgdir_above_4gb"]
};

#[derive(Default)]
struct Notes {
    entry: Option<u64>,
    hypercall_page: Option<u64>,
    virt_base: Option<u64>,
    paddr_offset: Option<u64>,
    xen_version: Option<String>,
    guest_os: Option<String>,
    loader: Option<String>,
    features: Option<String>,
    supported_features: u32,
    mod_start_pfn: bool,
    init_p2m: Option<u64>,
    seen: bool,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Notes {
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        for note in NoteIter::new(bytes).filter(|n| n.is_xen()) {
            self.seen = true;
            let num = |name| note.numeric().ok_or(ImageError::BadNote(name));
            match note.kind {
                elfnote::XEN_ELFNOTE_ENTRY => self.entry = Some(num("ENTRY")?),
                elfnote::XEN_ELFNOTE_HYPERCALL_PAGE => {
                    self.hypercall_page = Some(num("HYPERCALL_PAGE")?)
                }
                elfnote::XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(num("VIRT_BASE")?),
                elfnote::XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(num("PADDR_OFFSET")?),
                elfnote::XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(text(note.string())),
                elfnote::XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(text(note.string())),
                elfnote::XEN_ELFNOTE_LOADER => self.loader = Some(text(note.string())),
                elfnote::XEN_ELFNOTE_FEATURES => self.features = Some(text(note.string())),
                elfnote::XEN_ELFNOTE_MOD_START_PFN => {
                    self.mod_start_pfn = num("MOD_START_PFN")? != 0
                }
                elfnote::XEN_ELFNOTE_INIT_P2M => self.init_p2m = Some(num("INIT_P2M")?),
                elfnote::XEN_ELFNOTE_SUPPORTED_FEATURES => {
                    // A 32-bit bitmap of submap 0; wider notes carry nothing we know.
                    self.supported_features |= num("SUPPORTED_FEATURES")? as u32
                }
                // HYPERCALL_PAGE is optional (recent Linux makes hypercalls with `syscall`
                // directly); PHYS32_ENTRY is PVH's entry, of no use to a PV builder; the rest
                // (PAE_MODE, L1_MFN_VALID, SUSPEND_CANCEL, HV_START_LOW...) ask nothing of it.
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parses and checks a PV kernel image.
pub fn parse(bytes: &[u8]) -> Result<KernelImage, ImageError> {
    parse_forcing(bytes, &[])
}

/// [`parse`], also accepting the required features named in `forced` although the hypervisor
/// does not provide them: for bringing a kernel up (the hypervisor's `force_features=`
/// option), never for production.
pub fn parse_forcing(bytes: &[u8], forced: &[&str]) -> Result<KernelImage, ImageError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes)
        .map_err(|e| ImageError::NotElf(alloc::format!("{e}")))?;
    if file.ehdr.class != elf::file::Class::ELF64 || file.ehdr.e_machine != EM_X86_64 {
        return Err(ImageError::NotX86_64);
    }
    if file.ehdr.e_type != ET_EXEC {
        return Err(ImageError::NotExecutable);
    }
    let mut notes = Notes::default();
    let mut segments = Vec::new();
    if let Some(phdrs) = file.segments() {
        for (i, ph) in phdrs.iter().enumerate() {
            match ph.p_type {
                PT_LOAD if ph.p_memsz > 0 => {
                    let file_end = ph.p_offset.checked_add(ph.p_filesz);
                    let mem_end = ph.p_paddr.checked_add(ph.p_memsz);
                    if file_end.is_none_or(|e| e > bytes.len() as u64)
                        || mem_end.is_none()
                        || ph.p_filesz > ph.p_memsz
                    {
                        return Err(ImageError::BadSegment(i));
                    }
                    segments.push(Segment {
                        offset: ph.p_offset,
                        filesz: ph.p_filesz,
                        memsz: ph.p_memsz,
                        paddr: ph.p_paddr,
                    });
                }
                PT_NOTE => {
                    let data = file.segment_data(&ph).map_err(|_| ImageError::BadSegment(i))?;
                    notes.absorb(data)?;
                }
                _ => {}
            }
        }
    }
    if let Some(shdrs) = file.section_headers() {
        for sh in shdrs.iter().filter(|s| s.sh_type == SHT_NOTE) {
            if let Ok((data, _)) = file.section_data(&sh) {
                notes.absorb(data)?;
            }
        }
    }
    if segments.is_empty() {
        return Err(ImageError::NoLoadSegments);
    }
    if !notes.seen {
        return Err(ImageError::NoXenNotes);
    }
    if notes.xen_version.as_deref() != Some("xen-3.0") {
        return Err(ImageError::UnsupportedXenVersion);
    }
    let is_linux = notes.guest_os.as_deref() == Some("linux");
    if notes.loader.as_deref() != Some("generic") && !is_linux {
        return Err(ImageError::UnsupportedLoader);
    }
    let features = notes.features.as_deref().unwrap_or("");
    for f in features.split('|').filter_map(|f| f.strip_prefix('!')) {
        if !SUPPORTED_REQUIRED_FEATURES.contains(&f) && !forced.contains(&f) {
            return Err(ImageError::RequiredFeature(f.into()));
        }
    }
    // Every required name is known by now (the supported ones all are).
    let (supported, required) = elfnote::parse_features(features.as_bytes())
        .map_err(|name| ImageError::RequiredFeature(text(name)))?;
    // As Xen with ELF notes: VIRT_BASE defaults to 0, PADDR_OFFSET to 0 (Linux has none and
    // links p_paddr as the physical address; our kernels give it as VIRT_BASE).
    let virt_base = notes.virt_base.unwrap_or(0);
    let paddr_offset = notes.paddr_offset.unwrap_or(0);
    if virt_base % 4096 != 0 {
        return Err(ImageError::BadAddress("VIRT_BASE"));
    }
    let virt_offset = virt_base.wrapping_sub(paddr_offset);
    let pstart = segments.iter().map(|s| s.paddr).min().unwrap_or(0);
    let pend = segments.iter().map(|s| s.paddr + s.memsz).max().unwrap_or(0);
    let virt_kstart = pstart.wrapping_add(virt_offset);
    let virt_kend = pend.wrapping_add(virt_offset);
    if virt_kend < virt_kstart || virt_kstart < virt_base {
        return Err(ImageError::BadAddress("load address"));
    }
    let entry = notes.entry.unwrap_or(file.ehdr.e_entry);
    if !(virt_kstart..virt_kend).contains(&entry) {
        return Err(ImageError::BadAddress("entry point"));
    }
    if let Some(hp) = notes.hypercall_page
        && (hp % 4096 != 0
            || hp < virt_kstart
            || hp.checked_add(4096).is_none_or(|e| e > virt_kend))
    {
        return Err(ImageError::BadAddress("hypercall page"));
    }
    Ok(KernelImage {
        entry,
        virt_base,
        virt_kstart,
        virt_kend,
        hypercall_page: notes.hypercall_page,
        segments,
        virt_offset,
        guest_os: notes.guest_os.unwrap_or_default(),
        mod_start_pfn: notes.mod_start_pfn,
        // As Xen: a P2M address that is unaligned or not below the kernel is ignored (and 0,
        // which Linux would not carry over to its own tables).
        init_p2m: notes.init_p2m.filter(|&a| a % 4096 == 0 && a != 0 && a < virt_base),
        features_supported: supported | notes.supported_features,
        features_required: required,
    })
}
