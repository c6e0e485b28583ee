//! dom0's shell: the `xl`-style commands a user types on dom0's console (`shell=1` on dom0's
//! command line). `editor` turns the bytes of the serial line into lines (Backspace, history on
//! the arrows), `command` parses a line into a [`command::Command`] (both hardware-free and
//! host-tested), and `run` carries it out with the toolstack and the services: one error line
//! for anything that cannot be done, and the shell carries on.

pub mod command;
pub mod editor;
#[cfg(target_os = "none")]
pub mod run;

#[cfg(target_os = "none")]
pub use run::Shell;
