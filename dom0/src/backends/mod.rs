//! dom0's back ends: its halves of the split devices domUs use. Each is one room holding its
//! connections per domain, serving each within a bounded amount of work per round, and
//! disconnecting a frontend that breaks its ring or floods dom0 with one log line while the
//! others carry on: every guest is a hostile peer. `console` serves every domU's PV console
//! (and routes serial input to one of them), `vcons` secondary consoles over xenbus; the block
//! and network back ends go here too. Rings are reached through `crate::ring`.

pub mod console;
pub mod vcons;
