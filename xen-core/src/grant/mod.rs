//! Grant tables.

#[cfg(target_os = "none")]
pub mod grant_table_op;
#[cfg(target_os = "none")]
pub mod map;
pub mod rules;
