//! A new user's first run: an EMPTY cache. Everything a warm cache hides runs
//! here for real: kernel download, PVH extraction, engine and guest image,
//! the KVM probe, saving a guest state, and a cross-kernel restore. A second
//! run from the same cache then resumes from the saved states.

mod common;
use common::{cell, Root, SERIAL};

#[test]
fn first_run_from_an_empty_cache_finishes_and_the_second_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir().unwrap();
    let root = Root::new(
        "kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter]\npairs: [[\"6.1\", \"6.12\"]]\nstep_ms: 100\n\
         timeouts: { boot: 240, operation: 240 }\nvm: { accel: auto, memory_mb: 1024 }\n",
    );
    let run = |out: &str| {
        let o = root.command(&["run", "--matrix", "--out", out]).env("CRTEST_CACHE", cache.path()).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        eprintln!("--- run {out}: exit {:?}\n{stdout}\n{stderr}", o.status.code());
        assert_eq!(o.status.code(), Some(0), "the cell must PASS from a cold cache\n{stderr}");
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.path().join(out).join("results.json")).unwrap()).unwrap();
        assert_eq!(cell(&r, "counter/6.1->6.12")["status"], "PASS", "{r}");
        r
    };
    let first = run("out1");
    for k in ["6.1", "6.12"] {
        let dir = cache.path().join("kernels").join(k);
        assert!(dir.join("vmlinux.pvh").is_file(), "PVH kernel extracted for {k}");
    }
    // The cross cell is judged against its control: the same dump restored
    // in another 6.1 guest, which the plan adds since the matrix names no diagonal.
    let c = cell(&first, "counter/6.1->6.12");
    assert_eq!((c["control"].as_str(), c["control_status"].as_str()), (Some("counter/6.1->6.1"), Some("PASS")), "{c}");
    assert_eq!(cell(&first, "counter/6.1->6.1")["control_only"], true);
    let start = |r: &serde_json::Value, vm: &str| r["vms"][vm]["start"].as_str().unwrap_or("none").to_string();
    // The first guest of each kind boots and saves its state; the second guest of 6.1 resumes from it.
    assert_eq!(start(&first, "6.1"), "saved", "{}", first["vms"]);
    assert_eq!(start(&first, "6.12~restore"), "saved", "{}", first["vms"]);
    assert_eq!(start(&first, "6.1~restore"), "resumed", "{}", first["vms"]);
    let states = std::fs::read_dir(cache.path().join("states")).unwrap().count();
    assert!(states >= 2, "a guest state saved per kind, found {states}");
    let second = run("out2");
    for vm in ["6.1", "6.1~restore", "6.12~restore"] {
        assert_eq!(start(&second, vm), "resumed", "{}", second["vms"]);
    }
}
