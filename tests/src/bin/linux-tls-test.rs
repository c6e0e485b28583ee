//! Runs inside a Linux domU (the Linux system tests put it in the initramfs, built static for
//! `x86_64-unknown-linux-gnu`): threads and thread-local storage, what a PV Linux must get
//! right for user space beyond a shell (clone, futex, the FS base per thread through
//! `arch_prctl` and context switches). Prints one `TLS-TEST:` line: PASS with what it did,
//! or FAIL with what went wrong.

use std::cell::Cell;
use std::sync::{Arc, Barrier};

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

const THREADS: u64 = 4;
const ROUNDS: u64 = 100_000;

fn main() {
    // Each thread counts in its own TLS slot, meeting the others at a barrier halfway so
    // they really run interleaved, then reports what its slot says.
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (1..=THREADS)
        .map(|id| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    COUNTER.with(|c| c.set(c.get() + id));
                    if round == ROUNDS / 2 {
                        barrier.wait();
                    }
                    if round % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
                (id, COUNTER.with(Cell::get))
            })
        })
        .collect();
    let mut bad = Vec::new();
    for h in handles {
        match h.join() {
            Ok((id, got)) if got == id * ROUNDS => {}
            Ok((id, got)) => bad.push(format!("thread {id} counted {got}, not {}", id * ROUNDS)),
            Err(_) => bad.push("a thread panicked".to_string()),
        }
    }
    // The main thread's slot was never touched by the others.
    let main_count = COUNTER.with(Cell::get);
    if main_count != 0 {
        bad.push(format!("main thread's counter is {main_count}"));
    }
    if bad.is_empty() {
        println!("TLS-TEST: PASS {THREADS} threads x {ROUNDS} rounds, thread-local counters apart");
    } else {
        println!("TLS-TEST: FAIL {}", bad.join("; "));
        std::process::exit(1);
    }
}
