//! Guests started from a saved state (real QEMU, real Debian 6.1): a second
//! run resumes the guest the first one saved, cells pass on it, a state QEMU
//! rejects means a cold boot and a new state, and guests resumed from one
//! state get randomness and a clock of their own.

mod common;
use common::{cell, GuestParts, Root, SERIAL};
use crtest::vm::qemu::Start;
use crtest::vm::vmstate::{self, Store};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MATRIX: &str = "kernels: [\"6.1\"]\nworkloads: [counter]\npairs: diagonal\nstep_ms: 100\n\
timeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg, memory_mb: 1024 }\n";

/// A cache whose `states/` starts empty, sharing the user's kernels, guest
/// images and engines (symlinks), so the first run must save a state.
fn cache_without_states() -> tempfile::TempDir {
    let real = crtest::util::fsutil::cache_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&real).unwrap();
    for entry in std::fs::read_dir(&real).unwrap().flatten() {
        if entry.file_name() != "states" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

fn run(root: &Root, cache: &Path, out: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["run", "--matrix", "--out", out];
    args.extend(extra);
    let output = root.command(&args).env("CRTEST_CACHE", cache).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("--- crtest {args:?} exit {:?}\n{stderr}", output.status.code());
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let results = serde_json::from_slice(&std::fs::read(root.path().join(out).join("results.json")).unwrap()).unwrap();
    (output, results)
}

fn states(cache: &Path) -> Vec<std::path::PathBuf> {
    let Ok(dir) = std::fs::read_dir(cache.join("states")) else { return vec![] };
    dir.flatten().map(|e| e.path()).collect()
}

#[test]
fn second_run_resumes_and_a_rejected_state_means_a_cold_boot() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(MATRIX);
    let cache = cache_without_states();

    let (_, first) = run(&root, cache.path(), "out1", &[]);
    assert_eq!(first["kernels"]["6.1"]["start"], "saved", "{}", first["kernels"]);
    let saved = states(cache.path());
    assert_eq!(saved.len(), 1, "one state, no temp files: {saved:?}");

    let (_, second) = run(&root, cache.path(), "out2", &[]);
    assert_eq!(second["kernels"]["6.1"]["start"], "resumed", "{}", second["kernels"]);
    assert_eq!(cell(&second, "counter/6.1->6.1")["status"], "PASS");
    let resumed_secs = second["kernels"]["6.1"]["boot_secs"].as_f64().unwrap();
    let cold_secs = first["kernels"]["6.1"]["boot_secs"].as_f64().unwrap();
    assert!(resumed_secs < cold_secs, "resumed in {resumed_secs}s, booted and saved in {cold_secs}s");

    // Half a state: QEMU rejects it; the run boots, replaces it and passes.
    let len = std::fs::metadata(&saved[0]).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&saved[0]).unwrap().set_len(len / 2).unwrap();
    let (out, third) = run(&root, cache.path(), "out3", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming from") && stderr.contains("failed, deleting it and booting"), "{stderr}");
    assert_eq!(third["kernels"]["6.1"]["start"], "saved", "{}", third["kernels"]);
    assert_eq!(cell(&third, "counter/6.1->6.1")["status"], "PASS");
    assert!(std::fs::metadata(&saved[0]).unwrap().len() > len * 3 / 4, "a whole state again");

    let (_, fourth) = run(&root, cache.path(), "out4", &["--no-resume"]);
    assert_eq!(fourth["kernels"]["6.1"]["start"], "cold", "{}", fourth["kernels"]);
    assert_eq!(cell(&fourth, "counter/6.1->6.1")["status"], "PASS");
}

/// Random bytes, the stack address of a new process (ASLR), the boot id, the
/// guest's clock, and whether the kernel reseeded its RNG on resume (the
/// vmgenid driver the init waits for).
const PROBE: &str = "head -c16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo\n\
grep '\\[stack\\]' /proc/self/maps\ncat /proc/sys/kernel/random/boot_id\ndate +%s\n\
ls -d /sys/bus/acpi/drivers/vmgenid 2>/dev/null || echo no-vmgenid\n\
dmesg | grep 'reseeded due to virtual machine fork' || true\n";

/// 6.1 reseeds on the new VM generation ID. 5.10 has no vmgenid driver, so
/// its guests are never saved (resumed ones were measured to share
/// `/dev/urandom` and ASLR): every start is a cold boot.
#[test]
fn guests_resumed_from_one_state_do_not_share_rng_or_clock() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (kernel, vmgenid) in [("6.1", true), ("5.10", false)] {
        let starts = match vmgenid {
            true => [Start::Saved, Start::Resumed, Start::Resumed],
            false => [Start::Cold; 3],
        };
        let probes = probe_three_guests(kernel, starts);
        let host_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        for p in &probes {
            let lines: Vec<&str> = p.lines().collect();
            assert!(lines.len() >= 5, "{p}");
            assert_eq!(lines[0].len(), 32, "16 random bytes in hex: {p}");
            let guest_now: i64 = lines[3].parse().unwrap();
            assert!((host_now - guest_now).abs() < 120, "{kernel}: guest clock {guest_now}, host {host_now}");
            assert_eq!(lines[4] == "/sys/bus/acpi/drivers/vmgenid", vmgenid, "{kernel}: {p}");
        }
        assert!(!probes[0].contains("virtual machine fork"), "{}", probes[0]);
        if vmgenid {
            assert!(probes[1..].iter().all(|p| p.contains("reseeded due to virtual machine fork")), "{probes:?}");
        }
        let (a, b) = (probes[1].lines().collect::<Vec<_>>(), probes[2].lines().collect::<Vec<_>>());
        for (i, what) in [(0, "/dev/urandom"), (1, "stack address"), (2, "boot id")] {
            assert_ne!(a[i], b[i], "{kernel}: two resumed guests share their {what}");
        }
    }
}

/// PROBE's output in three guests started one after the other with one
/// store of states, which must start as `starts` says.
fn probe_three_guests(kernel: &str, starts: [Start; 3]) -> Vec<String> {
    let parts = GuestParts::new(kernel);
    let states = tempfile::tempdir().unwrap();
    let store = Store { dir: states.path().to_path_buf() };
    let notice = |m: String| eprintln!("note: {m}");
    let mut probes = Vec::new();
    for expected in starts {
        let share = tempfile::tempdir().unwrap();
        let mut vm = vmstate::start(&parts.spec(share.path()), &parts.cfg, Some(&store), &notice).unwrap();
        assert_eq!(vm.start, expected);
        let r = vm.run("probe", PROBE, Duration::from_secs(60)).unwrap();
        assert_eq!(r.rc, 0, "{}", r.output);
        eprintln!("{kernel} {:?} guest:\n{}", vm.start, r.output);
        vm.shutdown();
        probes.push(r.output);
    }
    probes
}
