//! Timers (bring-up placeholder; the real list arrives with the scheduler).
pub fn on_interrupt() {}
pub fn run_expired() {}
