//! Links the kernel the way a Xen domain builder loads it. Every flag is here (not in a
//! `.cargo/config.toml` higher up), so the folder builds the same wherever it is copied.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=kernel.ld");
    println!("cargo:rerun-if-changed=build.rs");
    // The layout: where each section goes, and the PT_NOTE segment with Xen's notes.
    println!("cargo:rustc-link-arg-bins=-T{dir}/kernel.ld");
    // Not a PIE: the target's default is a static PIE, but a PV domain builder applies no
    // relocations, so every address (the notes' `.quad _start` too) must be final at link time.
    // The code itself stays position independent (RIP-relative), which is what a linker's
    // "recompile with -fPIC" hint is about; the fix is this flag, not -fPIC.
    println!("cargo:rustc-link-arg-bins=--no-pie");
    // 4 KiB segment alignment: the builder maps the image page by page from pseudo-physical
    // frame 0; with the default 2 MiB, segments land megabytes apart.
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
}
