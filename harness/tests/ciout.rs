//! Machine-readable output of one real run (kernel 6.1: `counter` passes
//! its diagonal, `posix_mqueue` run despite its known gap FAILs at the
//! dump): the JUnit report CI systems show, the KCIDB export validated with
//! the schema of the `kcidb-io` package itself (installed from PyPI into a
//! venv in a temp dir), `crtest compare --junit` as a gate and
//! `--rerun-failed`.

mod common;
use common::{Root, SERIAL};
use std::path::Path;
use std::process::Command;

const MATRIX: &str = "kernels: [\"6.1\"]\nworkloads: [counter, posix_mqueue]\npairs: diagonal\nstep_ms: 100\n\
timeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n";

/// The schema version crtest writes; checked against the package's own class.
const KCIDB_SCHEMA: &str = "V5_3";

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A venv with kcidb-io in `dir`; its python.
fn kcidb_python(dir: &Path) -> std::path::PathBuf {
    let venv = dir.join("venv");
    let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap();
    assert!(ok.success(), "python3 -m venv failed (python3-venv is in ci/host-deps.sh)");
    let pip = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "kcidb-io"]).output().unwrap();
    assert!(pip.status.success(), "pip install kcidb-io: {}", String::from_utf8_lossy(&pip.stderr));
    venv.join("bin/python")
}

/// Validates `file` with kcidb-io's schema `KCIDB_SCHEMA` exactly; the
/// validator's stderr on failure.
fn kcidb_validate(python: &Path, file: &Path) -> Result<String, String> {
    let script = format!(
        "import json, sys, kcidb_io\n\
         v = kcidb_io.schema.{KCIDB_SCHEMA}\n\
         data = json.load(open(sys.argv[1]))\n\
         v.validate_exactly(data)\n\
         print(f'valid against {{v.major}}.{{v.minor}} (latest {{kcidb_io.schema.LATEST.major}}.{{kcidb_io.schema.LATEST.minor}})')\n"
    );
    let out = Command::new(python).arg("-c").arg(script).arg(file).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(stdout.into_owned())
    } else {
        Err(stderr.into_owned())
    }
}

#[test]
fn real_run_exports_junit_kcidb_and_gates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(MATRIX);
    let out = root.run(&["run", "--matrix", "--out", "out", "--run-known-gaps", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(1), "posix_mqueue FAILs");
    let r = root.results();
    let status = |id: &str| common::cell(&r, id)["status"].as_str().unwrap().to_string();
    assert_eq!(status("counter/6.1->6.1"), "PASS");
    assert_eq!(status("posix_mqueue/6.1->6.1"), "FAIL");

    // JUnit: totals on the root, properties, the failure text in the body
    // with the tail of the dump's log.
    let junit = text(&root.out().join("junit.xml"));
    assert!(
        junit.contains("<testsuites name=\"crtest\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""),
        "{junit}"
    );
    let release = r["kernels"]["6.1"]["release"].as_str().unwrap();
    assert!(junit.contains(&format!("<property name=\"kernel.6.1.release\" value=\"{release}\"/>")), "{junit}");
    assert!(junit.contains("<property name=\"kernel.6.1.packages\" value=\"linux-image-"), "{junit}");
    assert!(junit.contains("<property name=\"seed\" value=\"1\"/>"), "{junit}");
    let start = junit.find("<failure type=\"FAIL\"").expect("a failure element");
    let failure = &junit[start..junit[start..].find("</failure>").unwrap() + start];
    assert!(failure.contains("\">dump: Error (") && failure.contains("Can't lookup mount"), "{failure}");
    assert!(failure.contains("--- last lines of cells/posix_mqueue/"), "the dump log's tail: {failure}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.out().join("junit.xml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

    // KCIDB: crtest's output validates with the package's own schema.
    let tmp = tempfile::tempdir().unwrap();
    let kcidb = tmp.path().join("kcidb.json");
    let exported = root.run(&["export", "--format", "kcidb", "--out", kcidb.to_str().unwrap(), "out"]);
    assert_eq!(exported.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&text(&kcidb)).unwrap();
    let tests = doc["tests"].as_array().unwrap();
    let by_path = |p: &str| tests.iter().find(|t| t["path"] == p).unwrap_or_else(|| panic!("no test {p}: {doc}"));
    assert_eq!(by_path("crtest.counter.6_1_to_6_1")["status"], "PASS");
    let mq = by_path("crtest.posix_mqueue.6_1_to_6_1");
    assert_eq!(mq["status"], "FAIL");
    assert!(mq["log_excerpt"].as_str().unwrap().contains("Can't lookup mount"), "{mq}");
    assert!(doc["builds"][0]["misc"]["packages"][0].as_str().unwrap().starts_with("linux-image-"), "{doc}");
    let python = kcidb_python(tmp.path());
    let verdict = kcidb_validate(&python, &kcidb).unwrap_or_else(|e| panic!("kcidb-io rejects the export: {e}"));
    eprintln!("kcidb-io: {verdict}");
    assert!(verdict.starts_with("valid against 5.3"), "{verdict}");
    // The validator is not a rubber stamp: a status KCIDB lacks is refused.
    let mut bad = doc.clone();
    bad["tests"][1]["status"] = "CONTROL-FAIL".into();
    let bad_file = tmp.path().join("bad.json");
    std::fs::write(&bad_file, serde_json::to_vec(&bad).unwrap()).unwrap();
    assert!(kcidb_validate(&python, &bad_file).unwrap_err().contains("CONTROL-FAIL"));

    // compare as a gate: against a baseline where posix_mqueue passed.
    let mut base = r.clone();
    for c in base["cells"].as_array_mut().unwrap() {
        c["status"] = "PASS".into();
        c["reason"] = serde_json::Value::Null;
    }
    let base_file = tmp.path().join("base.json");
    std::fs::write(&base_file, serde_json::to_vec(&base).unwrap()).unwrap();
    let gate_xml = tmp.path().join("gate.xml");
    let gate = root.run(&["compare", "--junit", gate_xml.to_str().unwrap(), base_file.to_str().unwrap(), "out"]);
    assert_eq!(gate.status.code(), Some(1));
    let gate_text = String::from_utf8_lossy(&gate.stdout);
    assert!(
        gate_text.contains("New failures (1):\n  posix_mqueue/6.1->6.1: PASS -> FAIL (dump: Error ("),
        "{gate_text}"
    );
    let xml = text(&gate_xml);
    assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<testcase name=\"posix_mqueue/6.1-&gt;6.1\""), "{xml}");

    // --rerun-failed plans the failed cell only.
    let plan = root.run(&["plan", "--rerun-failed", "out", "--run-known-gaps"]);
    assert_eq!(plan.status.code(), Some(0));
    let listed: Vec<String> = String::from_utf8_lossy(&plan.stdout)
        .lines()
        .filter(|l| l.contains("->") && !l.contains(" cells ("))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["posix_mqueue/6.1->6.1"]);
}
