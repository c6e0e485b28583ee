//! Hypercalls.

pub mod multicall;
pub mod sysctl;
pub mod table;
pub mod version;
