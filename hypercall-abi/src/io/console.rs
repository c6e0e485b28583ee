//! The console ring page (`io/console.h`). Defined in [`crate::console`] with the
//! `console_io` hypercall; re-exported here under the header's name.

pub use crate::console::{
    CONNECTION, IN_CONS, IN_OFF, IN_PROD, IN_SIZE, OUT_CONS, OUT_OFF, OUT_PROD, OUT_SIZE,
    XENCONSOLE_CONNECTED, XENCONSOLE_DISCONNECTED, XenconsInterface, mask_idx,
};
