//! How a kernel runs the self-tests its command line names (`test=<name>[+<name>...]`): each
//! file of tests has a table naming them, each kernel passes the tables it offers, and each
//! check prints `TEST <name>: PASS` or `TEST <name>: FAIL <why>`, which the system tests look
//! for on the serial line. The pv-guest kernel offers every self-test; dom0 the ones it must
//! run while it serves domUs.

use alloc::string::String;

use pv_guest::println;

/// What a named self-test does.
#[derive(Clone, Copy)]
pub enum Test {
    /// A check: its verdict is printed as a `TEST` line.
    Check(fn() -> Result<(), String>),
    /// Runs and prints its own lines (benchmarks, and tests that end the domain).
    Run(fn()),
}

/// Runs the tests named in `list` (separated by '+': QEMU's -initrd splits modules at commas),
/// in that order, from `tables`. Unknown names fail.
pub fn run(list: &str, tables: &[&[(&str, Test)]]) {
    for name in list.split('+').filter(|n| !n.is_empty()) {
        match tables.iter().flat_map(|t| t.iter()).find(|(n, _)| *n == name) {
            Some((_, Test::Check(check))) => report(name, check()),
            Some((_, Test::Run(f))) => f(),
            None => report(name, Err("unknown test".into())),
        }
    }
}

fn report(name: &str, result: Result<(), String>) {
    match result {
        Ok(()) => println!("TEST {name}: PASS"),
        Err(why) => println!("TEST {name}: FAIL {why}"),
    }
}
