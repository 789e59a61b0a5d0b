//! Hostile and bad input: every case is refused with exit 2 (or judged with
//! the right verdict) and a message naming what was wrong, before any VM
//! starts; nothing is written under --out and no payload runs. Then a
//! bounded, seeded fuzz of the YAML loaders: they never panic, and either
//! load or name the file and a line.
//!
//! No case boots a VM: each is refused while loading, or is a command
//! (`plan`, `compare`, `merge`, `convert`) that never starts one. Runs get
//! an empty cache and PATH, so a case that wrongly got through would fail
//! to find kernels or tools rather than boot anything.

mod common;

use common::Root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel and workload every valid part of a case uses.
const HEAD: &str = "kernels: [\"6.1\"]\nworkloads: [counter]\n";

/// One hostile input: files to write into the project root (`MARK` in their
/// text is replaced by the marker path), a command, and what must come out.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
}

const fn case(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
) -> Case {
    Case { name, files, args, code, message }
}

/// A matrix case: `m.yaml` holds the text, `crtest plan` loads it.
const fn plan_case(name: &'static str, matrix: &'static [(&'static str, &'static str)], message: &'static str) -> Case {
    case(name, matrix, &["plan", "--matrix", "m.yaml"], 2, message)
}

/// A user program whose `extra` fields follow its name and summary.
macro_rules! program {
    ($name:literal, $extra:literal) => {
        concat!(
            "kernels: [\"6.1\"]\nworkloads: [counter]\nprograms:\n  - name: ",
            $name,
            "\n    summary: s\n    path: prog\n    steps: 10\n    dump_after: 3\n",
            $extra
        )
    };
}

const CASES: &[Case] = &[
    // User strings that reach guest shell scripts.
    plan_case(
        "program name with $(...)",
        &[("m.yaml", program!("\"$(touch MARK)\"", ""))],
        "m.yaml:4: program: workload name `$(touch ",
    ),
    plan_case("program name with ;", &[("m.yaml", program!("\"a;touch MARK\"", ""))], "expected 1 to 64 of"),
    plan_case("program name with /", &[("m.yaml", program!("../../escape", ""))], "workload name `../../escape`"),
    plan_case(
        "env key with a payload",
        &[("m.yaml", program!("app", "    env: {\"X;touch MARK\": 1}\n"))],
        "env key `X;touch ",
    ),
    plan_case(
        "transcript with a payload",
        &[("m.yaml", program!("app", "    transcript: \"$(touch MARK)\"\n"))],
        "transcript `$(touch ",
    ),
    plan_case(
        "dump_root outside the directory",
        &[("m.yaml", program!("app", "    dump_root: ../../etc/x\n"))],
        "dump_root `../../etc/x`",
    ),
    plan_case(
        "program: with path:",
        &[("m.yaml", program!("app", "    program: counter\n"))],
        "`program:` names a library source and cannot go with it",
    ),
    plan_case(
        "min_kernel banana",
        &[("m.yaml", program!("app", "    min_kernel: banana\n"))],
        "min_kernel expects a version like \"5.13\", got `banana`",
    ),
    plan_case(
        "6-byte ELF header as a program",
        &[("m.yaml", program!("app", "")), ("prog", "\x7fELF\x02\x01")],
        "is not a statically linked x86_64 executable: not an ELF file",
    ),
    plan_case(
        "program from /dev/zero",
        &[("m.yaml", "kernels: [\"6.1\"]\nworkloads: [counter]\nprograms:\n  - name: app\n    summary: s\n    path: /dev/zero\n    steps: 10\n    dump_after: 3\n")],
        "/dev/zero: expected a regular file",
    ),
    // Numbers.
    plan_case("memory_mb 0", &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "vm: {memory_mb: 0}\n"))], "m.yaml:3: vm.memory_mb 0: expected 256..=65536"),
    plan_case(
        "memory_mb huge",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "vm:\n  memory_mb: 99999999\n"))],
        "m.yaml:4: vm.memory_mb 99999999: expected 256..=65536",
    ),
    plan_case("step_ms 0", &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "step_ms: 0\n"))], "m.yaml:3: step_ms 0: expected 1..=60000"),
    plan_case(
        "timeouts 0",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "timeouts: {boot: 0}\n"))],
        "timeouts.boot 0: expected 1..=86400",
    ),
    plan_case(
        "timeouts that overflow",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "timeouts: {operation: 18446744073709551615}\n"))],
        "timeouts.operation 18446744073709551615: expected 1..=86400",
    ),
    plan_case(
        "steps out of range",
        &[("m.yaml", "kernels: [\"6.1\"]\nworkloads: [counter]\nprograms:\n  - name: app\n    summary: s\n    path: prog\n    steps: 4000000000\n    dump_after: 3\n")],
        "expected steps in 2..=100000",
    ),
    plan_case(
        "dump_after not below steps",
        &[("m.yaml", "kernels: [\"6.1\"]\nworkloads: [counter]\nprograms:\n  - name: app\n    summary: s\n    path: prog\n    steps: 10\n    dump_after: 10\n")],
        "0 < dump_after < steps",
    ),
    case("-j 0", &[("m.yaml", HEAD)], &["run", "--matrix", "m.yaml", "--out", "out", "-j", "0"], 2, "expected 1..=64"),
    case("-j 100000", &[("m.yaml", HEAD)], &["run", "--matrix", "m.yaml", "--out", "out", "-j", "100000"], 2, "expected 1..=64"),
    case("--iters 0", &[("m.yaml", HEAD)], &["run", "--matrix", "m.yaml", "--out", "out", "--iters", "0"], 2, "--iters"),
    case("--runs 0", &[], &["bench", "--runs", "0"], 2, "--runs"),
    case("--repeat 0", &[], &["bisect", "--good", "6.1", "--bad", "7.3", "--workload", "counter", "--repeat", "0"], 2, "--repeat"),
    // Selections.
    plan_case("pairs: []", &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "pairs: []\n"))], "m.yaml:3: the pairs select no cell"),
    plan_case(
        "upgrade of one kernel",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "pairs: upgrade\n"))],
        "the pairs select no cell",
    ),
    plan_case("duplicate workload", &[("m.yaml", "kernels: [\"6.1\"]\nworkloads: [counter, pipe, counter]\n")], "m.yaml:2: workloads: `counter` appears twice"),
    plan_case("duplicate kernel", &[("m.yaml", "kernels: [\"6.1\", \"6.1\"]\nworkloads: [counter]\n")], "m.yaml:1: kernels: `6.1` appears twice"),
    // Files that are not regular.
    case("matrix /dev/zero", &[], &["plan", "--matrix", "/dev/zero"], 2, "/dev/zero: expected a regular file"),
    plan_case(
        "formats /dev/zero",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "formats: /dev/zero\n"))],
        "/dev/zero: expected a regular file",
    ),
    case("formats --formats /dev/zero", &[], &["formats", "--formats", "/dev/zero"], 2, "/dev/zero: expected a regular file"),
    // Formats files.
    plan_case(
        "duplicate format version",
        &[
            ("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "formats: f.yaml\n")),
            ("f.yaml", "versions: [criu-3.17, criu-4.1, criu-4.2, criu-4.1]\n"),
        ],
        "f.yaml:1: version `criu-4.1` appears twice",
    ),
    plan_case(
        "two converters for one step",
        &[
            ("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "formats: f.yaml\n")),
            (
                "f.yaml",
                "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.1, to: criu-4.2, use: identity}\n  - {from: criu-4.1, to: criu-4.2, use: crit-recode}\n",
            ),
        ],
        "f.yaml:4: converter criu-4.1 -> criu-4.2: a second converter for this step",
    ),
    plan_case(
        "converter without its execute bit",
        &[
            ("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "formats: f.yaml\n")),
            ("f.yaml", "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.1, to: criu-4.2, use: conv.sh}\n"),
            ("conv.sh", "#!/bin/sh\ntouch MARK\n"),
        ],
        "f.yaml:3: converter `conv.sh`: expected one of identity, crit-recode, pagemap-nr-pages or an executable file",
    ),
    plan_case(
        "matrix converter without its execute bit",
        &[("m.yaml", concat!("kernels: [\"6.1\"]\nworkloads: [counter]\n", "converter: conv.sh\n")), ("conv.sh", "#!/bin/sh\ntouch MARK\n")],
        "is not executable",
    ),
    // Output directories.
    case("--out /", &[("m.yaml", HEAD)], &["run", "--matrix", "m.yaml", "--out", "/"], 2, "--out /: expected a new or empty directory"),
    case(
        "--out a foreign directory",
        &[("m.yaml", HEAD), ("out/keep.txt", "mine")],
        &["run", "--matrix", "m.yaml", "--out", "out"],
        2,
        "--out out: expected a new or empty directory",
    ),
    case(
        "--out with a results.json of someone else",
        &[("m.yaml", HEAD), ("out/results.json", "{\"cells\": []}")],
        &["run", "--matrix", "m.yaml", "--out", "out"],
        2,
        "expected a new or empty directory",
    ),
    case(
        "merge into a foreign directory",
        &[("m.yaml", HEAD), ("out/keep.txt", "mine"), ("s1/results.json", SHARD)],
        &["merge", "--matrix", "m.yaml", "--out", "out", "s1"],
        2,
        "--out out: expected a new or empty directory",
    ),
    // crtest cell usage errors stop `git bisect run`.
    case("cell with an unknown workload", &[], &["cell", "--src-kernel", "6.1", "--dst-kernel", "6.1", "--workload", "nope", "--out", "out"], 2, "--workload nope: unknown workload"),
    case(
        "cell with an unknown engine",
        &[],
        &["cell", "--src-kernel", "6.1", "--dst-kernel", "6.1", "--workload", "counter", "--restore-engine", "criu-9", "--out", "out"],
        2,
        "--restore-engine criu-9: unknown engine",
    ),
    // compare: garbage never opens the gate.
    case("compare a file with itself", &[("a/base.json", BASE)], &["compare", "a/base.json", "a/base.json"], 2, "are the same file"),
    case("compare reads the file given", &[("a/base.json", BASE), ("a/new.json", NEW_FAIL)], &["compare", "a/base.json", "a/new.json"], 1, "New failures (1):"),
    case("compare with an empty NEW", &[("a/base.json", BASE), ("a/new.json", "")], &["compare", "a/base.json", "a/new.json"], 2, "a/new.json: expected a crtest results document"),
    case("compare with {} as NEW", &[("a/base.json", BASE), ("a/new.json", "{}")], &["compare", "a/base.json", "a/new.json"], 2, "schema is absent"),
    case("compare with no cells", &[("a/base.json", BASE), ("a/new.json", NO_CELLS)], &["compare", "a/base.json", "a/new.json"], 2, "a/new.json: no cells"),
    case("compare with another schema", &[("a/base.json", BASE), ("a/new.json", OTHER_SCHEMA)], &["compare", "a/base.json", "a/new.json"], 2, "schema is \"other/9\""),
    case("compare with duplicated ids", &[("a/base.json", BASE), ("a/new.json", DUPLICATED)], &["compare", "a/base.json", "a/new.json"], 2, "cell counter/6.1->6.1 appears twice"),
    case("compare PASS -> SKIP", &[("a/base.json", BASE), ("a/new.json", NEW_SKIP)], &["compare", "a/base.json", "a/new.json"], 1, "New skips (1):"),
    case("compare PASS -> SKIP allowed", &[("a/base.json", BASE), ("a/new.json", NEW_SKIP)], &["compare", "--allow-skip", "a/base.json", "a/new.json"], 0, "1 new skip"),
    case("compare removed cell", &[("a/base.json", BASE2), ("a/new.json", BASE)], &["compare", "a/base.json", "a/new.json"], 1, "Removed (1):"),
    case("compare removed cell allowed", &[("a/base.json", BASE2), ("a/new.json", BASE)], &["compare", "--allow-removed", "a/base.json", "a/new.json"], 0, "1 removed"),
    // merge
    case(
        "merge cells of another matrix",
        &[("m.yaml", HEAD), ("s1/results.json", FOREIGN)],
        &["merge", "--matrix", "m.yaml", "--out", "out", "s1"],
        2,
        "s1/results.json: cell pipe/6.1->6.1 is not a cell of",
    ),
    case(
        "merge a cell without stages",
        &[("m.yaml", HEAD), ("s1/results.json", NO_STAGES)],
        &["merge", "--matrix", "m.yaml", "--out", "out", "s1"],
        2,
        "s1/results.json: cell counter/6.1->6.1: missing field `stages`",
    ),
    // convert
    case(
        "convert refuses OUT inside IN",
        &[("in/inventory.img", "x")],
        &["convert", "--from", "criu-4.2", "--to", "criu-4.1", "in", "in/out"],
        2,
        "expected a directory outside the input",
    ),
    case(
        "convert refuses a missing IN",
        &[],
        &["convert", "--from", "criu-4.2", "--to", "criu-4.1", "nope", "out"],
        2,
        "nope: cannot read",
    ),
];

const BASE: &str =
    r#"{"schema": "crtest-results/1", "cells": [{"id": "counter/6.1->6.1", "status": "PASS", "reason": null}]}"#;
const BASE2: &str = r#"{"schema": "crtest-results/1", "cells": [{"id": "counter/6.1->6.1", "status": "PASS"}, {"id": "pipe/6.1->6.1", "status": "PASS"}]}"#;
const NEW_FAIL: &str = r#"{"schema": "crtest-results/1", "cells": [{"id": "counter/6.1->6.1", "status": "FAIL", "reason": "restore: x"}]}"#;
const NEW_SKIP: &str =
    r#"{"schema": "crtest-results/1", "cells": [{"id": "counter/6.1->6.1", "status": "SKIP", "reason": "no"}]}"#;
const NO_CELLS: &str = r#"{"schema": "crtest-results/1", "cells": []}"#;
const OTHER_SCHEMA: &str = r#"{"schema": "other/9", "cells": [{"id": "counter/6.1->6.1", "status": "PASS"}]}"#;
const DUPLICATED: &str = r#"{"schema": "crtest-results/1", "cells": [{"id": "counter/6.1->6.1", "status": "PASS"}, {"id": "counter/6.1->6.1", "status": "PASS"}]}"#;
const FOREIGN: &str = r#"{"schema": "crtest-results/1", "cells": [
  {"id": "counter/6.1->6.1", "workload": "counter", "src": "6.1", "dst": "6.1", "skip": null, "status": "PASS", "reason": null, "stages": [], "conversion": [], "artifacts": null, "dump_after": 3},
  {"id": "pipe/6.1->6.1", "workload": "pipe", "src": "6.1", "dst": "6.1", "skip": null, "status": "PASS", "reason": null, "stages": [], "conversion": [], "artifacts": null, "dump_after": 3}]}"#;
const SHARD: &str = r#"{"schema": "crtest-results/1", "cells": [
  {"id": "counter/6.1->6.1", "workload": "counter", "src": "6.1", "dst": "6.1", "skip": null, "status": "PASS", "reason": null, "stages": [], "conversion": [], "artifacts": null, "dump_after": 3}]}"#;
const NO_STAGES: &str = r#"{"schema": "crtest-results/1", "cells": [
  {"id": "counter/6.1->6.1", "workload": "counter", "src": "6.1", "dst": "6.1", "skip": null, "status": "PASS", "reason": null, "conversion": [], "artifacts": null, "dump_after": 3}]}"#;

/// Every entry under `dir` (relative paths, sorted), or None when absent.
fn tree(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn hostile_inputs_are_refused_and_nothing_runs() {
    let root = Root::new(HEAD);
    let (cache, empty_path) = (root.path().join("empty-cache"), root.path().join("empty-path"));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&empty_path).unwrap();
    let mut failures = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let dir = root.path().join(format!("case{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("MARKER");
        for (name, text) in c.files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text.replace("MARK", &marker.display().to_string())).unwrap();
        }
        let out = dir.join("out");
        let before = tree(&out);
        let result = Command::new(env!("CARGO_BIN_EXE_crtest"))
            .args(c.args)
            .current_dir(&dir)
            .env("CRTEST_ROOT", root.path())
            .env("CRTEST_CACHE", &cache)
            .env("PATH", &empty_path)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
        let mut wrong = Vec::new();
        if result.status.code() != Some(c.code) {
            wrong.push(format!("exit {:?}, expected {}", result.status.code(), c.code));
        }
        if !text.contains(c.message) {
            wrong.push(format!("no `{}` in the output", c.message));
        }
        if tree(&out) != before {
            wrong.push(format!("--out changed: {:?} -> {:?}", before, tree(&out)));
        }
        if marker.exists() {
            wrong.push("the payload ran (marker exists)".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("case {i} `{}` {:?}: {}\n{text}", c.name, c.args, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

/// A symlink in IN: refused before any converter runs, the target untouched.
#[test]
fn convert_refuses_links_in_its_input() {
    let root = Root::new(HEAD);
    let (input, outside) = (root.path().join("in"), root.path().join("outside.img"));
    std::fs::create_dir(&input).unwrap();
    std::fs::write(&outside, "precious").unwrap();
    std::os::unix::fs::symlink(&outside, input.join("pagemap-1.img")).unwrap();
    let out = root.run(&["convert", "--from", "criu-4.2", "--to", "criu-4.1", "in", "out"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected only regular files in an image directory"));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert!(!root.path().join("out").exists());
}

/// Engine options with `{dir}` keep everything but `$D` inert, as the
/// guest's shell sees them.
#[test]
fn dir_placeholder_keeps_payloads_inert() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("MARKER");
    let m = marker.display();
    for opt in
        [format!("--root={{dir}}/$(touch {m})"), format!("{{dir}}`touch {m}`"), format!("\\\"{{dir}}\";touch {m}")]
    {
        let word = crtest::util::shell::quote_with_var(&opt, "{dir}", "D");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {word}"))
            .env("D", "/run/crtest/d1")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), opt.replace("{dir}", "/run/crtest/d1"));
        assert!(!marker.exists(), "{opt} ran");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A small deterministic generator (xorshift64*): the same seed gives the
/// same inputs on every machine, so a failure is repeated by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that break parsers and validators: bad numbers, YAML syntax,
/// aliases, tags, shell payloads, paths and fields of the formats.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999",
    "1e400",
    "~",
    "null",
    "[]",
    "{}",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "&a [*a, *a, *a, *a]",
    "!!binary",
    "!!str",
    "!!map",
    "<<: *a",
    ": ",
    "- ",
    "'",
    "\"",
    "#",
    "|",
    ">",
    "\t",
    "$(touch MARK)",
    "`touch MARK`",
    "../..",
    "/dev/zero",
    "/",
    "? ",
    "---",
    "...",
    "%YAML 1.2",
    "name: x",
    "steps: 0",
    "dump_after: 99",
    "pairs: []",
    "memory_mb: 0",
    "kernels: []",
    "6.1",
    "5.10",
    "criu-4.1",
    "criu-4.2",
    "identity",
    "use: conv.sh",
    "- {from: criu-4.1, to: criu-4.2, use: identity}",
    "\"\\u0000\"",
    "\"\\x7f\"",
    "é",
    "\u{202e}",
    "{src: \"6.1\", dst: \"6.1\", engines: [host, criu-4.1]}",
    "programs: [{name: p, summary: s, path: /dev/zero, steps: 3, dump_after: 1}]",
    "env: {\"A B\": 1}",
    "min_kernel: banana",
    "local: {bzimage: /dev/zero}",
    "version: \"9.9\"",
    "formats: /dev/zero",
];

/// One random edit of `text`: drop, repeat, swap, re-indent or cut lines,
/// or put a token in; `other` gives lines from another document.
fn mutate(rng: &mut Rng, text: &str, other: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    let i = rng.below(n);
    match rng.below(9) {
        0 => {
            lines.remove(i);
        }
        1 => lines.insert(i, lines[i].clone()),
        2 => lines.swap(i, rng.below(n)),
        3 => lines[i] = format!("{}{}", [" ", "  ", "\t", "    "][rng.below(4)], lines[i].trim_start()),
        4 => lines.truncate(i),
        5 => {
            let extra: Vec<&str> = other.lines().collect();
            if !extra.is_empty() {
                lines.insert(i, extra[rng.below(extra.len())].to_string());
            }
        }
        6 => {
            // Replace one word of the line with a token.
            let words: Vec<&str> = lines[i].split(' ').collect();
            let w = rng.below(words.len());
            let mut words: Vec<String> = words.into_iter().map(String::from).collect();
            words[w] = TOKENS[rng.below(TOKENS.len())].to_string();
            lines[i] = words.join(" ");
        }
        7 => lines.insert(i, format!("{}{}", "  ".repeat(rng.below(3)), TOKENS[rng.below(TOKENS.len())])),
        _ => {
            // Insert a token at a character boundary.
            let line = &lines[i];
            let at = line.char_indices().map(|(k, _)| k).nth(rng.below(line.chars().count() + 1)).unwrap_or(line.len());
            lines[i] = format!("{}{}{}", &line[..at], TOKENS[rng.below(TOKENS.len())], &line[at..]);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Which loader a fuzz input goes to.
#[derive(Clone, Copy, Debug)]
enum Loader {
    Matrix,
    Workloads,
    Formats,
    Catalog,
}

/// Loads `path` (written with the input) with `loader`: Ok, or the error's
/// file, line and text.
fn load(loader: Loader, path: &Path, ctx: &FuzzContext) -> Result<(), crtest::config::yaml::ConfigError> {
    match loader {
        Loader::Matrix => {
            crtest::config::matrix::Matrix::load(path, &ctx.catalog, &ctx.library, &ctx.formats).map(drop)
        }
        Loader::Workloads => crtest::config::workload::Library::load(path.parent().unwrap()).map(drop),
        Loader::Formats => crtest::config::formats::Formats::load(path, &ctx.engines).map(drop),
        Loader::Catalog => crtest::kernel::Catalog::load(path).map(drop),
    }
}

struct FuzzContext {
    catalog: crtest::kernel::Catalog,
    library: crtest::config::workload::Library,
    formats: crtest::config::formats::Formats,
    engines: Vec<crtest::engine::EngineSpec>,
}

/// The YAML loaders never panic on mutated inputs, and either load or name
/// the file and a line. Seeded and time-bounded: CRTEST_FUZZ_SEED and
/// CRTEST_FUZZ_SECS (default 10) repeat or lengthen a run.
#[test]
fn yaml_loaders_never_panic_and_always_locate_errors() {
    let repo = common::repo();
    let seed: u64 = std::env::var("CRTEST_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let secs: u64 = std::env::var("CRTEST_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("fuzz seed {seed} for {secs}s (CRTEST_FUZZ_SEED={seed} repeats it)");
    eprintln!("fuzz seed {seed} for {secs}s (CRTEST_FUZZ_SEED={seed} repeats it)");
    let engines = crtest::engine::load_catalog(&repo.join("kernels/engines.yaml")).unwrap();
    let ctx = FuzzContext {
        catalog: crtest::kernel::Catalog::load(&repo.join("kernels/catalog.yaml")).unwrap(),
        library: crtest::config::workload::Library::load(&repo.join("workloads")).unwrap(),
        formats: crtest::config::formats::Formats::load(&repo.join("converters/formats.yaml"), &engines).unwrap(),
        engines,
    };
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
    let seeds: Vec<(Loader, String)> = vec![
        (Loader::Matrix, read("matrix.yaml")),
        (Loader::Matrix, read("ci/matrices/e2e.yaml")),
        (Loader::Matrix, read("ci/matrices/criu-4.1.yaml")),
        (Loader::Matrix, "kernels: [\"6.1\"]\nworkloads: [counter]\nprograms:\n  - name: app\n    summary: s\n    path: /bin/true\n    steps: 10\n    dump_after: 3\n    env: {A: \"1\"}\n    transcript: out.txt\n".into()),
        (Loader::Workloads, read("workloads/workloads.yaml")),
        (Loader::Formats, read("converters/formats.yaml")),
        (Loader::Catalog, read("kernels/catalog.yaml")),
    ];
    let dir = tempfile::tempdir().unwrap();
    // The workload loader reads NAME.c beside workloads.yaml.
    let wl_dir = dir.path().join("workloads");
    std::fs::create_dir(&wl_dir).unwrap();
    for e in std::fs::read_dir(repo.join("workloads")).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".c") {
            std::fs::copy(e.path(), wl_dir.join(e.file_name())).unwrap();
        }
    }
    let marker = dir.path().join("MARKER");
    let mut rng = Rng(seed | 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let (mut runs, mut loaded) = (0u64, 0u64);
    while std::time::Instant::now() < deadline {
        let (loader, base) = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())].1;
        let mut text = base.clone();
        for _ in 0..1 + rng.below(4) {
            text = mutate(&mut rng, &text, other);
        }
        let text = text.replace("MARK", &marker.display().to_string());
        let path = match loader {
            Loader::Workloads => wl_dir.join("workloads.yaml"),
            _ => dir.path().join("input.yaml"),
        };
        std::fs::write(&path, &text).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(*loader, &path, &ctx)));
        let result = result.unwrap_or_else(|_| panic!("{loader:?} panicked (seed {seed}, run {runs}) on:\n{text}"));
        match result {
            Ok(()) => loaded += 1,
            // An error about another file the input names (formats: FILE)
            // is located in that file, when it can be.
            Err(e) if e.path != path => {}
            Err(e) => {
                let line = e.line.unwrap_or_else(|| panic!("{loader:?}: no line in `{e}` (seed {seed}) on:\n{text}"));
                let prefix = format!("{}:{line}: ", path.display());
                assert!(e.to_string().starts_with(&prefix), "{loader:?}: `{e}` (seed {seed}) on:\n{text}");
                assert!(line <= text.lines().count().max(1) + 1, "{loader:?}: line {line} beyond the input `{e}`");
            }
        }
        assert!(!marker.exists(), "a payload ran (seed {seed}) on:\n{text}");
        runs += 1;
    }
    println!("{runs} inputs, {loaded} loaded");
    assert!(runs > 100, "only {runs} inputs in {secs}s");
}
