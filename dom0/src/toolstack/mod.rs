//! dom0's toolstack: the privileged domain's control of the others. `ctl` wraps the `domctl`
//! and `sysctl` hypercalls; `domains` keeps dom0's services in step with the domains that
//! exist (adopting the boot domUs the hypervisor built, unpausing them, forgetting gone ones);
//! `commands` are the measurements dom0's command line can ask for. The domain builder and the
//! `xl`-style commands (create, list, console, destroy, ...) go here next.

pub mod commands;
pub mod ctl;
pub mod domains;
