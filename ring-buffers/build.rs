//! Declares the `loom` cfg so that `--cfg loom` builds (the loom models) are not flagged as an
//! unexpected cfg, while the crate keeps the workspace's lint table.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
