//! dom0's `xl`-style shell, driven over the serial line as a user would type (`shell=1`):
//! guests created from configurations in dom0's ramdisk, `list`, `pause`/`unpause`,
//! `console` with Ctrl-], `destroy` returning every frame, `shutdown`/`reboot` through
//! `control/shutdown`, the balloon (`mem-set`/`mem-max`), a crashing guest rebuilt (and the
//! restart-loop guard), and one error line for each bad input.

use tests::*;

fn cfg(name: &str, text: &str) -> (String, Vec<u8>) {
    (
        format!("{name}.cfg"),
        format!("name = \"{name}\"\nkernel = \"pv-guest\"\n{text}").into_bytes(),
    )
}

/// A boot of dom0 with the shell, its ramdisk an archive of pv-guest and `cfgs`.
fn shell_boot(name: &str, cfgs: &[(String, Vec<u8>)]) -> Boot {
    let mut files = vec![pv_guest_file()];
    files.extend(cfgs.iter().map(|(n, t)| (n.as_str(), t.clone())));
    let archive = guest_archive(name, &files);
    Boot::new(name, "dom0", "shell=1").module(archive, "").timeout_secs(240)
}

/// The `free_frames` figures `info` printed, in order.
fn free_frames(run: &Run) -> Vec<i64> {
    run.matching("free_frames ").iter().map(|l| num_after(l, "free_frames")).collect()
}

/// The serial lines, without the shell's prompt where output followed it.
fn lines(run: &Run) -> Vec<&str> {
    run.lines.iter().map(|(_, l)| l.trim_start_matches("xl> ")).collect()
}

/// The lines from the first containing `from` to the next containing `to` (exclusive).
fn between<'a>(run: &'a Run, from: &str, to: &str) -> Vec<&'a str> {
    let lines = lines(run);
    let a = lines.iter().position(|l| l.contains(from)).unwrap_or_else(|| panic!("no {from:?}"));
    let b =
        a + lines[a..].iter().position(|l| l.contains(to)).unwrap_or_else(|| panic!("no {to:?}"));
    lines[a + 1..b].to_vec()
}

#[test]
fn three_guests_listed_paused_attached_and_destroyed_with_every_frame_back() {
    let run = shell_boot(
        "shell-guests",
        &[
            cfg("ticker", "memory = 32\nextra = \"scenario=ticker count=100000 period_ms=100\"\n"),
            cfg("echo", "memory = 16\nextra = \"scenario=echo lines=100\"\n"),
            cfg("idle", "memory = 24\nextra = \"scenario=ticker count=100000 period_ms=5000\"\n"),
        ],
    )
    .step("dom0: shell ready", "info\rcreate ticker\rcreate echo\rcreate idle\rlist\r")
    .step("[ticker] tick 3", "pause ticker\rtop\runpause ticker\r")
    .step("d1 (ticker) unpaused", "")
    .step("[ticker] tick", "console echo\rhello there\r")
    .step("echo: got 'hello there'", "\x1dlist\rsched-credit -d ticker -w 512 -c 50\rvcpu-list\rdestroy ticker\rdestroy echo\rdestroy idle\rinfo\rpoweroff\r")
    .until("dom0: powering off")
    .run();
    // Three guests from configs, listed with their names, memory and states.
    for (id, name, mib) in [(1, "ticker", 32), (2, "echo", 16), (3, "idle", 24)] {
        run.expect(&format!("dom0: d{id} ({name}) created: {mib} MiB"));
        let row = lines(&run)
            .into_iter()
            .find(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no list row for {name}:\n{}", run.text()));
        let cols: Vec<&str> = row.split_whitespace().collect();
        // Memory: what it was built with, plus the few frames of its boot layout at most.
        let mem: i64 = cols[2].parse().unwrap();
        assert!((mib..=mib + 1).contains(&mem), "{row}");
        assert_eq!(cols[3], "1", "{row}");
        assert!(cols[4].len() == 6 && !cols[4].contains('c') && !cols[4].contains('p'), "{row}");
    }
    run.expect("Domain-0");
    // Paused through one second of `top`: no tick (one already in its ring may still show),
    // its state p and no CPU; ticks again after unpause.
    let paused = between(&run, "d1 (ticker) paused", "d1 (ticker) unpaused");
    let ticks = paused.iter().filter(|l| l.starts_with("[ticker] tick")).count();
    assert!(ticks <= 1, "ticks while paused: {paused:#?}");
    let top_row = paused.iter().find(|l| l.starts_with("ticker ")).expect("top row for ticker");
    let cols: Vec<&str> = top_row.split_whitespace().collect();
    assert!(cols[1].contains('p') && cols[3] == "0", "{top_row}");
    let after = between(&run, "d1 (ticker) unpaused", "dom0: attached to d2 (echo)");
    assert!(after.iter().any(|l| l.starts_with("[ticker] tick")), "{after:#?}");
    // The console: the guest's own output, unprefixed; input delivered; Ctrl-] returns.
    let attached = between(&run, "dom0: attached to d2 (echo)", "dom0: detached from d2 (echo)");
    assert!(attached.contains(&"echo: got 'hello there'"), "{attached:#?}");
    assert!(
        !attached.iter().any(|l| l.starts_with("[ticker]")),
        "other guests held: {attached:#?}"
    );
    // Back in the shell: the next command ran.
    let after = between(&run, "dom0: detached from d2 (echo)", "d1 (ticker) destroyed");
    assert!(
        after.iter().any(|l| l.starts_with("ticker ") && l.contains("512") && l.contains("50")),
        "{after:#?}"
    );
    assert!(after.iter().any(|l| l.contains("Affinity")), "{after:#?}");
    // Every frame back: free memory where it was before the first create.
    let free = free_frames(&run);
    assert_eq!(free.len(), 2, "{}", run.text());
    assert_eq!(free[0], free[1], "{}", run.text());
    for d in 1..=3 {
        run.expect(&format!("domain {d}: all frames returned"));
    }
    run.expect_not("error:");
}

#[test]
fn shutdown_and_reboot_go_through_control_shutdown() {
    let run = shell_boot(
        "shell-shutdown",
        &[
            cfg("a", "memory = 16\nextra = \"scenario=ticker count=100000 period_ms=100\"\n"),
            cfg("b", "memory = 16\nextra = \"scenario=ticker count=100000 period_ms=100\"\n"),
        ],
    )
    .step("dom0: shell ready", "create a\rcreate b\r")
    .step("[b] tick 2", "shutdown a\rreboot b\r")
    .step("dom0: domain 3 (b) rebuilt after its reboot", "")
    .step("[b] tick 0", "list\rpoweroff\r")
    .until("dom0: powering off")
    .run();
    run.expect("d1 (a): poweroff requested (control/shutdown)");
    run.expect("[a] pv-guest: poweroff requested by the toolstack");
    run.expect("domain 1: all frames returned");
    run.expect("[b] pv-guest: reboot requested by the toolstack");
    assert!(run.matching("[b] pv-guest: hello from a PV guest").len() >= 2);
    run.expect_not("did not acknowledge");
    run.expect_not("error:");
}

#[test]
fn a_crashing_guest_restarts_within_a_second_until_the_loop_guard_stops_it() {
    let run = shell_boot(
        "shell-crash",
        &[cfg(
            "crasher",
            "memory = 16\nextra = \"test=fault-nohandler\"\non_crash = \"restart\"\n",
        )],
    )
    .step("dom0: shell ready", "create crasher\r")
    .step("crasher restarting too fast", "list\rinfo\rpoweroff\r")
    .until("dom0: powering off")
    .run();
    // Rebuilt five times, then the guard: destroyed, and the shell carries on.
    assert_eq!(run.matching("(crasher) rebuilt after its crash").len(), 5, "{}", run.text());
    run.expect("dom0: crasher restarting too fast (5 rebuilds in 60 s): destroyed, not rebuilt");
    for d in 1..=6 {
        run.expect(&format!("domain {d}: all frames returned"));
    }
    assert!(!lines(&run).iter().any(|l| l.starts_with("crasher ")), "{}", run.text());
    // Each rebuilt guest prints its banner within a second of the crash before (system time).
    let crashes: Vec<f64> = run
        .matching("(crasher) crashed")
        .iter()
        .map(|l| {
            let t = l.split('[').nth(1).unwrap().split(']').next().unwrap();
            t.trim().parse().unwrap()
        })
        .collect();
    let ups: Vec<f64> = run
        .matching("[crasher] pv-guest: up at system time ")
        .iter()
        .map(|l| l.split("system time ").nth(1).unwrap().trim_end_matches(" s").parse().unwrap())
        .collect();
    assert_eq!(crashes.len(), 6, "{}", run.text());
    assert_eq!(ups.len(), 6, "{}", run.text());
    for i in 0..5 {
        let gap = ups[i + 1] - crashes[i];
        println!("crash {i} -> banner again in {:.0} ms", gap * 1000.0);
        assert!(gap > 0.0 && gap < 1.0, "crash at {} s, banner at {} s", crashes[i], ups[i + 1]);
    }
}

#[test]
fn mem_set_shrinks_and_regrows_a_guest_and_free_memory_follows() {
    let run = shell_boot(
        "shell-balloon",
        &[cfg("bal", "memory = 32\nextra = \"scenario=ticker count=100000 period_ms=100\"\n")],
    )
    .step("dom0: shell ready", "create bal\r")
    .step("[bal] tick 1", "info\rmem-set bal 16\r")
    .step(
        "[bal] balloon: target 16384 KiB",
        "info\rlist\rmem-set bal 64\rmem-max bal 8\rmem-max bal 64\rmem-set bal 24m\r",
    )
    .step("[bal] balloon: target 24576 KiB", "info\rmem-set bal 40\r")
    .step("[bal] balloon: target 40960 KiB", "info\rdestroy bal\rpoweroff\r")
    .until("dom0: powering off")
    .run();
    let free = free_frames(&run);
    assert_eq!(free.len(), 4, "{}", run.text());
    // 16 MiB given back, 8 taken again, the last 8 taken again (a guest grows back to the
    // memory it was built with, no further): free memory moved by exactly that.
    assert_eq!(free[1] - free[0], 4096, "{free:?}");
    assert_eq!(free[2] - free[0], 2048, "{free:?}");
    assert_eq!(free[3], free[0], "{free:?}");
    run.expect("[bal] balloon: target 16384 KiB: 8192 -> 4096 pages");
    run.expect("[bal] balloon: target 24576 KiB: 4096 -> 6144 pages");
    run.expect("[bal] balloon: target 40960 KiB: 6144 -> 8192 pages");
    let row = *lines(&run).iter().find(|l| l.starts_with("bal ")).expect("a list row for bal");
    assert_eq!(row.split_whitespace().nth(2), Some("16"), "{row}");
    run.expect("error: 64 MiB is above d1's maximum of 32 MiB (mem-max raises it)");
    run.expect("error: 8 MiB is below d1's memory target of 16 MiB (mem-set lowers it first)");
    run.expect("d1 (bal): memory maximum 65536 KiB");
    run.expect("domain 1: all frames returned");
}

#[test]
fn each_bad_input_is_one_error_line_and_keeps_nothing() {
    let pv = pv_guest_file();
    let half = pv.1[..pv.1.len() / 2].to_vec();
    let run = shell_boot(
        "shell-bad",
        &[
            ("corrupt-kernel".into(), half),
            ("syntax.cfg".into(), b"name = \"syntax\"\nkernel = \"pv-guest\"\nmemroy = 16\n".to_vec()),
            ("missing.cfg".into(), b"name = \"missing\"\nkernel = \"no-such-kernel\"\n".to_vec()),
            ("corrupt.cfg".into(), b"name = \"corrupt\"\nkernel = \"corrupt-kernel\"\nmemory = 16\n".to_vec()),
            cfg("small", "memory = 1\n"),
            cfg("huge", "memory = 4096\n"),
            cfg("ok", "memory = 16\nextra = \"scenario=ticker count=100000 period_ms=100\"\n"),
        ],
    )
    .step(
        "dom0: shell ready",
        "info\rcreate nothere\rcreate syntax\rcreate missing\rcreate corrupt\rcreate small\rcreate huge\rcreate ok\rcreate ok\rpause nosuch\rdestroy 42\rdestroy 0\rmem-set ok 10x\rfrobnicate\rsched-credit -d ok -w 0\rconsole\rhelp\rdmesg\rdestroy ok\rinfo\rpoweroff\r",
    )
    .until("dom0: powering off")
    .run();
    for want in [
        "error: create nothere: no configuration nothere in dom0's ramdisk",
        "error: create syntax: line 3: unknown key \"memroy\"",
        "error: create missing: missing: kernel: no file no-such-kernel in dom0's ramdisk",
        "error: create corrupt: corrupt: bad kernel image:",
        "error: create small: small: memory = 1 MiB: domain memory too small for its boot layout",
        "error: create huge: huge: out of memory: 4096 MiB asked",
        "error: create ok: a domain named ok exists already",
        "error: no domain named nosuch",
        "error: no domain with id 42",
        "error: cannot destroy Domain-0 (this dom0)",
        "error: bad memory size \"10x\"",
        "error: unknown command \"frobnicate\"",
        "error: bad weight \"0\"",
        "error: usage: console <dom>",
    ] {
        assert_eq!(run.matching(want).len(), 1, "want one {want:?}:\n{}", run.text());
    }
    assert_eq!(run.matching("error:").len(), 14, "{}", run.text());
    // The shell carried on: help, the hypervisor's log, and every frame back.
    run.expect("  mem-set <dom> <size>");
    run.expect("(XEN) ");
    let dmesg = between(&run, "dmesg", "destroy ok");
    assert!(dmesg.iter().any(|l| l.contains("Xen") || l.contains("xen-core")), "{dmesg:#?}");
    let free = free_frames(&run);
    assert_eq!(free.len(), 2, "{}", run.text());
    assert_eq!(free[0], free[1], "{}", run.text());
}

/// `./scripts/run` with a terminal on stdin (`script` gives it one) boots into the shell with
/// the example configurations: a ticker is created, attached to, detached from, and `poweroff`
/// ends the run.
#[test]
fn scripts_run_with_a_terminal_boots_into_the_shell() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let _m = shared();
    let mut child = std::process::Command::new("script")
        .args(["-qfec", "./scripts/run", "/dev/null"])
        .current_dir(root())
        .env("NIC", "0")
        .env("DISKS", "")
        .env("TIMEOUT", "200")
        .env_remove("GUESTS")
        .env_remove("XL_SHELL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from util-linux runs");
    let out = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let t0 = Instant::now();
    let mut seen = 0;
    for (marker, text) in [
        ("dom0: shell ready", "create ticker\r"),
        ("d1 (ticker) created", "console ticker\r"),
        ("tick 1", "\x1d"),
        ("dom0: detached from d1 (ticker)", "list\rpoweroff\r"),
    ] {
        loop {
            let text_so_far = out.lock().unwrap().clone();
            if let Some(i) = text_so_far[seen..].find(marker) {
                seen += i + marker.len();
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(200), "no {marker:?} in:\n{text_so_far}");
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("{:.1} s: {marker}", t0.elapsed().as_secs_f64());
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    let _ = reader.join();
    let text = out.lock().unwrap().clone();
    let _ = std::fs::write(root().join("target/test-logs/scripts-run-shell.log"), &text);
    assert!(status.success(), "{text}");
    for want in [
        "dom0: attached to d1 (ticker); Ctrl-] detaches",
        "pv-guest: hello from a PV guest",
        "dom0: powering off at the shell's request",
        "==> dom0 powered off",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // Quiet: before the attach, the ticker's lines were held, not printed with its name.
    assert!(!text.contains("[ticker]"), "{text}");
}
