//! CI at scale: a matrix run whole with one VM at a time, and again as three
//! partitions with two VMs at a time, merged, must give the same cells and
//! verdicts; `compare` must flag an injected regression.

mod common;
use common::{Root, SERIAL};
use std::collections::BTreeMap;

fn verdicts(results: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    results["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let reason = c["reason"].as_str().unwrap_or("").to_string();
            (c["id"].as_str().unwrap().to_string(), (c["status"].as_str().unwrap().to_string(), reason))
        })
        .collect()
}

#[test]
fn partitions_merge_to_the_whole_run_and_compare_flags_regressions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("kernels: [\"5.10\", \"6.1\"]\nworkloads: [counter, pipe]\npairs: all\nvm: { accel: tcg }\n");
    let whole = root.run(&["run", "--matrix", "--out", "whole", "-j", "1", "--seed", "5"]);
    assert_eq!(whole.status.code(), Some(0), "counter and pipe restore both ways between 5.10 and 6.1");
    let mut shards = Vec::new();
    for k in 1..=3 {
        let dir = format!("shard{k}");
        let out =
            root.run(&["run", "--matrix", "--out", &dir, "-j", "2", "--seed", "5", "--partition", &format!("{k}/3")]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "shard {k} broke");
        shards.push(dir);
    }
    let mut args = vec!["merge", "--out", "merged"];
    args.extend(shards.iter().map(String::as_str));
    let merged = root.run(&args);
    assert_eq!(merged.status.code(), Some(0));
    let load = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.path().join(d).join("results.json")).unwrap()).unwrap()
    };
    let (a, b) = (verdicts(&load("whole")), verdicts(&load("merged")));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "-j 1 whole run and merged -j 2 partitions differ");
    assert!(std::fs::read_to_string(root.path().join("merged/junit.xml")).unwrap().contains(r#"tests="4""#));

    // A missing shard (one that ran cells: a partition of this small matrix
    // may be empty) is an error naming what is missing.
    let ran = |d: &String| !load(d)["cells"].as_array().unwrap().is_empty();
    let dropped = shards.iter().position(ran).expect("some shard ran cells");
    let mut args = vec!["merge", "--out", "partial"];
    args.extend(shards.iter().enumerate().filter(|(i, _)| *i != dropped).map(|(_, d)| d.as_str()));
    let partial = root.run(&args);
    assert_eq!(partial.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("missing"), "merge must fail on missing cells");

    // Same results: no regression. An injected one: exit 1 and named.
    assert_eq!(root.run(&["compare", "whole", "merged"]).status.code(), Some(0));
    let mut broken = load("merged");
    let cell = broken["cells"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "counter/5.10->6.1").unwrap();
    assert_eq!(cell["status"], "PASS");
    cell["status"] = "FAIL".into();
    cell["reason"] = "restore: injected".into();
    std::fs::create_dir(root.path().join("broken")).unwrap();
    std::fs::write(root.path().join("broken/results.json"), serde_json::to_vec(&broken).unwrap()).unwrap();
    let cmp = root.run(&["compare", "whole", "broken"]);
    assert_eq!(cmp.status.code(), Some(1));
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(text.contains("counter/5.10->6.1: PASS -> FAIL (restore: injected)"), "{text}");
}
