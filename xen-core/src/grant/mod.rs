//! Grant tables (v1): how one domain lets another map or copy its pages.
//!
//! Hardware-free and host-tested: the rules (`rules`: whether a shared entry lets a domain map
//! or copy, the flag update that claims it, and the books of who holds which ref). On the
//! hardware: each domain's table of shared entry frames (`table`, part of the domain record),
//! mapping and unmapping granted frames (`map`), copying through grants (`copy`), and the
//! `grant_table_op` hypercall.
//!
//! Trusted: nothing the granter writes. An entry is read and claimed with one compare-and-swap
//! on the shared word, so it cannot change between check and use; a grant mapping is an
//! ordinary validated page-table entry, so the memory rules hold for it too.

#[cfg(target_os = "none")]
pub mod copy;
#[cfg(target_os = "none")]
pub mod grant_table_op;
#[cfg(target_os = "none")]
pub mod map;
pub mod rules;
#[cfg(target_os = "none")]
pub mod table;
