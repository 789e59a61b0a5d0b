//! Network state across guests: tcp (established connections with data
//! queued both ways, a listener, a full window) and udp, each in a network
//! namespace of its own, dumped in one guest and restored in another, on the
//! same kernel and across kernels, with real CRIU in real guests.

mod common;
use common::{cell, Root, SERIAL};

const MATRIX: &str = "kernels: [\"6.1\", \"6.12\"]\nworkloads: [tcp, udp]\npairs: all\nstep_ms: 100\n\
timeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg, memory_mb: 1024 }\n";

/// Every cell passes, the diagonal included, which restores in a second
/// guest of the kind; each cross cell's control (its source's diagonal) passed.
#[test]
fn tcp_and_udp_restore_in_another_guest() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(MATRIX);
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let r = root.results();
    for vm in ["6.1", "6.1~restore", "6.12", "6.12~restore"] {
        assert!(r["vms"][vm].is_object(), "no VM {vm}: {}", r["vms"]);
    }
    let kernels = ["6.1", "6.12"];
    for w in ["tcp", "udp"] {
        for src in kernels {
            for dst in kernels {
                let c = cell(&r, &format!("{w}/{src}->{dst}"));
                assert_eq!(c["status"], "PASS", "{c}");
                if src != dst {
                    let control = format!("{w}/{src}->{src}");
                    assert_eq!((c["control"].as_str(), c["control_status"].as_str()), (Some(&*control), Some("PASS")));
                }
            }
        }
    }
    assert_eq!(r["cells"].as_array().unwrap().len(), 8, "{}", r["cells"]);
    // The tree was dumped with a network namespace of its own (which is
    // what carries CRIU's lock of its connections to the restoring guest).
    let tcp = cell(&r, "tcp/6.1->6.1");
    let log = std::fs::read_to_string(root.out().join(tcp["artifacts"].as_str().unwrap()).join("dump.log")).unwrap();
    assert!(log.contains("Dump NET namespace info"), "tcp's netns was not dumped");
}
