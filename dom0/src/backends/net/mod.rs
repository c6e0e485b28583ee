//! netback: dom0's half of Xen's network device (`io/netif.h`), and the bridge the vifs and
//! the uplink NIC are joined by.
//! - `vif` (host-tested): one vif's data path over its transmit and receive rings;
//! - `csum` (host-tested): filling the blank checksums frontends leave to "hardware";
//! - `bridge` (host-tested): the learning bridge `xenbr0`;
//! - `backend`: the vifs' xenbus life (nodes, handshake, disconnect) and each round's work,
//!   moving frames between the vifs, the bridge and the virtio-net uplink.

pub mod bridge;
pub mod csum;
pub mod vif;

#[cfg(target_os = "none")]
pub mod backend;

#[cfg(test)]
mod tests;
