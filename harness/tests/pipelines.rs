//! The CI examples in `ci/` are for users to copy: every crtest invocation in
//! them must parse with the real command line, and they must fan out with
//! --partition, merge, publish JUnit and compare against a baseline.

use clap::Parser;
use crtest::cli::{Cli, Command};
use std::path::Path;

/// `cargo run --release -- ARGS...` lines of a pipeline file, with CI
/// variables replaced by a sample value and any `|| ...` tail dropped.
fn crtest_invocations(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.split_once("cargo run --release -- ").map(|(_, rest)| rest))
        .map(|rest| rest.split(" || ").next().unwrap())
        .map(|cmd| {
            let cmd =
                cmd.replace("${{ matrix.shard }}", "2").replace("$CI_NODE_INDEX", "2").replace("$CI_NODE_TOTAL", "3");
            std::iter::once("crtest".to_string()).chain(cmd.split_whitespace().map(str::to_string)).collect()
        })
        .collect()
}

#[test]
fn pipeline_examples_use_the_real_cli() {
    let ci = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci");
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(ci.join(file)).unwrap();
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let calls = crtest_invocations(&text);
        let mut kinds = Vec::new();
        for argv in &calls {
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{file}: {argv:?} does not parse: {e}"));
            kinds.push(match cli.command {
                Command::Run(r) => {
                    let p = r.select.partition.unwrap_or_else(|| panic!("{file}: run without --partition"));
                    assert_eq!(p.count, 3, "{file}");
                    "run"
                }
                Command::Merge { dirs, .. } => {
                    assert_eq!(dirs.len(), 3, "{file}: merge must take every shard");
                    "merge"
                }
                Command::Compare { baseline, junit, .. } => {
                    assert!(junit.is_some(), "{file}: the gate writes its regressions as JUnit");
                    assert!(
                        ci.join("..").join(&baseline).join("results.json").is_file(),
                        "{file}: no baseline at {baseline:?}"
                    );
                    "compare"
                }
                _ => "other",
            });
        }
        assert_eq!(kinds, ["run", "merge", "compare"], "{file}");
        assert!(text.contains("junit.xml"), "{file} must publish JUnit");
    }
}

fn yaml(file: &str) -> serde_yaml_ng::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci").join(file);
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `with:` maps of a GitHub job's steps that use `action` (by prefix).
fn uses<'a>(job: &'a serde_yaml_ng::Value, action: &str) -> Vec<&'a serde_yaml_ng::Value> {
    job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .map(|s| &s["with"])
        .collect()
}

fn strings(v: &serde_yaml_ng::Value) -> Vec<String> {
    match v {
        serde_yaml_ng::Value::String(s) => s.lines().map(str::to_string).collect(),
        serde_yaml_ng::Value::Sequence(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

/// What hosted runners need: the cache kept between runs, JUnit published
/// with the permission it needs, bounded artifacts, the gate's JUnit.
#[test]
fn github_example_caches_publishes_and_bounds_artifacts() {
    let gh = yaml("github-actions.yml");
    let (shard, merge) = (&gh["jobs"]["shard"], &gh["jobs"]["merge"]);
    let text = serde_yaml_ng::to_string(shard).unwrap();
    assert!(text.contains("CRTEST_CACHE=$GITHUB_WORKSPACE/.crtest-cache"), "CRTEST_CACHE inside the workspace");
    let cache = uses(shard, "actions/cache@");
    assert_eq!(cache.len(), 1, "the shards restore and save the cache");
    let cached = strings(&cache[0]["path"]);
    assert!(cached.iter().all(|p| p.starts_with(".crtest-cache/")) && cached.contains(&".crtest-cache/kernels".into()));
    let upload = uses(shard, "actions/upload-artifact@");
    let paths = strings(&upload[0]["path"]);
    assert!(paths.iter().any(|p| p.starts_with('!') && p.ends_with("/images/**")), "images excluded: {paths:?}");
    assert_eq!(merge["permissions"]["checks"].as_str(), Some("write"), "the JUnit action writes check runs");
    let reports: Vec<String> =
        uses(merge, "mikepenz/action-junit-report@").iter().flat_map(|w| strings(&w["report_paths"])).collect();
    assert_eq!(reports, ["crtest-out/junit.xml", "crtest-out/compare.xml"]);
    let merged = uses(merge, "actions/upload-artifact@");
    assert_eq!(strings(&merged[0]["path"]), ["crtest-out"], "the merged output, report.html included");
    let compare = calls(&gh, "compare");
    assert!(compare.contains("--junit crtest-out/compare.xml"), "{compare}");
}

#[test]
fn gitlab_example_caches_in_the_project_and_publishes_the_gate() {
    let gl = yaml("gitlab-ci.yml");
    assert_eq!(gl["variables"]["CRTEST_CACHE"].as_str(), Some("$CI_PROJECT_DIR/.crtest-cache"));
    let cached = strings(&gl["shard"]["cache"]["paths"]);
    assert!(cached.iter().all(|p| p.starts_with(".crtest-cache/")) && !cached.is_empty(), "{cached:?}");
    let exclude = strings(&gl["shard"]["artifacts"]["exclude"]);
    assert!(exclude.iter().any(|p| p.contains("/cells/*/*/images/")), "{exclude:?}");
    let artifacts = &gl["merge"]["artifacts"];
    assert_eq!(strings(&artifacts["paths"]), ["crtest-out/"]);
    assert_eq!(strings(&artifacts["reports"]["junit"]), ["crtest-out/junit.xml", "crtest-out/compare.xml"]);
    assert!(calls(&gl, "compare").contains("--junit crtest-out/compare.xml"));
}

/// The crtest command line of `sub` in a pipeline file.
fn calls(doc: &serde_yaml_ng::Value, sub: &str) -> String {
    let text = serde_yaml_ng::to_string(doc).unwrap();
    let needle = format!("cargo run --release -- {sub} ");
    text.lines().find_map(|l| l.split_once(&needle).map(|(_, rest)| rest.to_string())).unwrap_or_default()
}
