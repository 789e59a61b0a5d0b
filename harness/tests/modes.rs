//! Real cells in C/R modes other than a plain dump: iterative pre-dumps
//! (memory tracking while the workload runs, the final dump on top of the
//! last round) across kernels and across engines, with every image dir of
//! the chain converted and the memory of the restored program checked page
//! by page against the dump.

mod common;
use common::{cell, Root, SERIAL};

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n\
kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter]\nmodes: [predump, page-server]\n";

#[test]
fn predump_chains_restore_across_kernels_and_engines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "{BASE}pairs:\n  - [\"6.1\", \"6.12\"]\n  - {{src: \"6.12\", dst: \"6.12\", dump_engine: criu-4.2, restore_engine: criu-4.1}}\n"
    ));
    let out = root.run(&["run", "--matrix", "--out", "out", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(0), "every predump cell passes");
    let r = root.results();
    for id in ["counter+predump/6.1->6.12", "counter+predump/6.12@criu-4.2->6.12@criu-4.1"] {
        let c = cell(&r, id);
        assert_eq!((c["status"].as_str(), c["mode"].as_str()), (Some("PASS"), Some("predump")), "{c}");
        // Two pre-dump dirs and the final one, each through the chain.
        assert_eq!(c["conversion"].as_array().unwrap().len(), 3, "{c}");
        let dir = root.out().join(c["artifacts"].as_str().unwrap());
        for log in ["pre-dump1.log", "pre-dump2.log", "dump.log"] {
            assert!(dir.join(log).is_file(), "{id}: no {log} in {}", dir.display());
        }
        // The final dump stood on the pre-dump rounds: CRIU opened their pages as parents.
        let dump_log = std::fs::read_to_string(dir.join("dump.log")).unwrap();
        assert!(
            dump_log.lines().any(|l| l.contains("Opened local page read") && l.contains("(parent ")),
            "{id}: the dump never read a parent round"
        );
    }
    // The cross-engine chain converts every dir 4.2 -> 4.1.
    let x = cell(&r, "counter+predump/6.12@criu-4.2->6.12@criu-4.1");
    let converters: Vec<&str> =
        x["conversion"].as_array().unwrap().iter().map(|s| s["converter"].as_str().unwrap()).collect();
    assert_eq!(converters, ["pagemap-nr-pages"; 3], "{x}");
    // Its control is the same mode's diagonal.
    assert_eq!(cell(&r, "counter+predump/6.12@criu-4.2->6.12@criu-4.2")["status"], "PASS");
    // A mode that is not built is a SKIP with its reason, never a PASS.
    let ps = cell(&r, "counter+page-server/6.1->6.12");
    assert_eq!(ps["status"], "SKIP", "{ps}");
    assert!(ps["reason"].as_str().unwrap().contains("not built yet"), "{ps}");
    // The grid names workload and mode.
    let grid = std::fs::read_to_string(root.out().join("grid.txt")).unwrap();
    assert!(grid.contains("counter+predump"), "{grid}");
}
