//! The console: the hypervisor's log and guests' emergency output, both on the serial line.
//!
//! Hardware-free and host-tested: the token bucket that limits what a guest can make the
//! hypervisor print (`ratelimit`), and the ring that keeps the last 16 KiB printed for
//! `XEN_SYSCTL_readconsole` (`ring`). On the hardware: the log (`logging`: the `log` facade as
//! `(XEN)` lines, `loglvl=`), and the `console_io` hypercall (dom0's output as it is, a
//! domU's gathered into lines under its name; serial input for dom0).
//!
//! Trusted: nothing a guest writes; its bytes are copied in chunks, and only printable ones
//! reach the serial line.

#[cfg(target_os = "none")]
pub mod console_io;
#[cfg(target_os = "none")]
pub mod logging;
pub mod ratelimit;
pub mod ring;
