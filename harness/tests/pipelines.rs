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
                Command::Compare { baseline, .. } => {
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
