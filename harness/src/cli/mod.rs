//! The command line: argument types only (the handlers are in
//! [`crate::commands`]), so tests and pipeline examples can be checked
//! against the real parser.

mod args;
mod help;

pub use args::{default_jobs, BisectArgs, CellArgs, RunArgs, Select, MAX_JOBS};
use help::AFTER_HELP;

use crate::config::matrix::AccelChoice;
use crate::vm::qemu::Accel;
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "crtest",
    version,
    about = "Checkpoint/restart compatibility across Linux kernels, in QEMU",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a matrix of cells (workload x source kernel x target kernel).
    Run(RunArgs),
    /// Show the cells a matrix expands to.
    Plan {
        #[command(flatten)]
        select: Select,
        /// How to print the plan.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Show the dump points of this seed (`crtest run --seed N`).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The kernel catalog.
    Kernels {
        #[command(subcommand)]
        command: KernelsCommand,
    },
    /// What the cache holds, by kind and size; `clean` deletes by age or kind.
    Cache {
        #[command(subcommand)]
        command: Option<CacheCommand>,
    },
    /// Writes a run's results in another format (KCIDB I/O JSON for kernel CI dashboards).
    Export {
        /// The output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here (atomically) instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The run's output directory (or its results.json).
        dir: PathBuf,
    },
    /// Prints a shell completion script for crtest.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// The workload library.
    Workloads {
        #[command(subcommand)]
        command: WorkloadsCommand,
    },
    /// Run one cell; exit 0 PASS, 1 FAIL, 125 when the kernel cannot be tested, 2 on a usage error (for `git bisect run`).
    Cell(CellArgs),
    /// Find the first kernel where a cell goes bad.
    Bisect(BisectArgs),
    /// Time boots (PVH and bzImage), dump, restore and whole cells: min/median/max.
    Bench {
        /// The catalog kernel to time.
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// The workload of the whole-cell timings.
        #[arg(long, default_value = "counter")]
        workload: String,
        /// Runs of each measurement (1..=100).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// auto (KVM only if a probe boot works), kvm or tcg.
        #[arg(long, value_enum)]
        accel: Option<AccelChoice>,
        /// Skip the resumed-guest timings, and run the whole cells on booted guests.
        #[arg(long)]
        no_resume: bool,
        /// Also time virtme-ng booting the same kernel (installed into the cache from PyPI if needed).
        #[arg(long)]
        vs_virtme: bool,
    },
    /// Lists image format versions, which engine speaks each, and the converters between them.
    Formats {
        /// Another formats file than converters/formats.yaml.
        #[arg(long, value_name = "FILE")]
        formats: Option<PathBuf>,
    },
    /// Converts an image directory along the chain of converters from one format to another.
    Convert {
        /// The format version of the input images (see `crtest formats`).
        #[arg(long, value_name = "FORMAT")]
        from: String,
        /// The format version to convert to.
        #[arg(long, value_name = "FORMAT")]
        to: String,
        /// Another formats file than converters/formats.yaml.
        #[arg(long, value_name = "FILE")]
        formats: Option<PathBuf>,
        /// The image directory to convert.
        input: PathBuf,
        /// Where the converted images go (must not exist; written atomically).
        output: PathBuf,
    },
    /// Combine the results of several partitions into one report.
    Merge {
        /// Output directories of the shards (each with results.json).
        dirs: Vec<PathBuf>,
        /// Where the merged results.json, junit.xml and grid.txt go.
        #[arg(long, default_value = "crtest-out")]
        out: PathBuf,
        /// The matrix the shards ran; every one of its cells must be present.
        #[arg(long, value_name = "FILE", default_value = "matrix.yaml")]
        matrix: PathBuf,
    },
    /// Re-render DIR/report.html (the page to see why cells failed) from DIR/results.json.
    Report {
        /// A run's output directory.
        dir: PathBuf,
    },
    /// One cell's story: status, reason, control, stages, chain, transcript diff, logs, artifacts.
    Show {
        /// The cell id, e.g. `counter/6.1->6.12`.
        cell: String,
        /// The run's output directory.
        #[arg(long, default_value = "crtest-out")]
        out: PathBuf,
        /// Colour: auto (when stdout is a terminal and NO_COLOR is unset), always or never.
        #[arg(long, value_enum, default_value_t)]
        color: crate::report::show::ColorChoice,
    },
    /// New failures, new CONTROL-FAILs, new skips, fixed cells, changed reasons, added and removed
    /// cells, and engine or kernel package changes between two runs; exit 1 on a regression (a new
    /// failure, CONTROL-FAIL or skip, or a removed cell), 2 on a bad document.
    Compare {
        /// Baseline results (an output dir or a results.json).
        baseline: PathBuf,
        /// New results (an output dir or a results.json).
        new: PathBuf,
        /// Accept cells of the baseline that NEW lacks (e.g. NEW ran a smaller matrix).
        #[arg(long)]
        allow_removed: bool,
        /// Accept cells that ran in the baseline and SKIP in NEW.
        #[arg(long)]
        allow_skip: bool,
        /// Accept cells that became CONTROL-FAIL (their control failed too: not the pair's fault).
        #[arg(long)]
        allow_control_fail: bool,
        /// Also write the regressions as a JUnit report (one testcase per regressed cell).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Id, release and whether each catalog kernel is cached.
    List,
    /// Download and extract kernels (all, or the ids given); no-op when cached.
    Fetch {
        /// Catalog ids (default: every kernel of the catalog).
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Each kind's entries and size (the default).
    Show,
    /// Deletes cache entries by age or kind (at least one of the two); not while a run uses the cache.
    Clean {
        /// Only entries not modified for this many days.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Only entries of this kind (repeatable).
        #[arg(long = "kind", value_enum, value_name = "KIND")]
        kinds: Vec<crate::tools::cache::Kind>,
    },
}

/// `crtest plan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// One line per cell, then what the run will do.
    Text,
    /// The plan's cells as JSON.
    Json,
}

/// `crtest export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// KCIDB I/O JSON (schema 5.3), for kernel CI dashboards.
    Kcidb,
}

/// `crtest bisect --axis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Axis {
    /// The catalog's kernels, in order.
    Kernel,
    /// kernels/engines.yaml's engines, in order, on the kernel of --fixed.
    Engine,
    /// The steps of the conversion chain --from -> --to, on the kernel of --fixed.
    Chain,
}

/// `crtest bisect --side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// K -> K.
    Both,
    /// K -> FIXED.
    Src,
    /// FIXED -> K.
    Dst,
}

impl ValueEnum for AccelChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[AccelChoice::Auto, AccelChoice::Force(Accel::Kvm), AccelChoice::Force(Accel::Tcg)]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            AccelChoice::Auto => PossibleValue::new("auto").help("KVM if a probe boot works, else TCG"),
            AccelChoice::Force(Accel::Kvm) => PossibleValue::new("kvm").help("KVM, or fail"),
            AccelChoice::Force(Accel::Tcg) => PossibleValue::new("tcg").help("emulation (TCG)"),
        })
    }
}

#[derive(Subcommand)]
pub enum WorkloadsCommand {
    /// Each workload with what it exercises and what it needs.
    List,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand has help text.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&clap::Command::new("x").arg(clap::Arg::new("bare").long("bare")), "x", &mut missing);
        assert_eq!(missing, ["x bare"], "the check sees an argument without help");
        missing.clear();
        walk(&Cli::command(), "crtest", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn closed_sets_parse_as_value_enums() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("crtest").chain(args.iter().copied()));
        let Ok(Cli { command: Command::Run(r) }) =
            parse(&["run", "--accel", "kvm", "-t", "counter/*", "-x", "*->5.10"])
        else {
            panic!("run does not parse");
        };
        assert_eq!(r.accel, Some(AccelChoice::Force(Accel::Kvm)));
        assert_eq!((r.select.tests, r.select.excludes), (vec!["counter/*".to_string()], vec!["*->5.10".to_string()]));
        assert!(parse(&["run", "--accel", "fast"]).is_err());
        assert!(parse(&["plan", "--format", "yaml"]).is_err());
        assert!(parse(&["bisect", "--good", "a", "--bad", "b", "--workload", "w", "--side", "up"]).is_err());
        let Ok(Cli { command: Command::Bisect(b) }) =
            parse(&["bisect", "--axis", "engine", "--side", "dst", "--good", "a", "--bad", "b", "--workload", "w"])
        else {
            panic!("bisect does not parse");
        };
        assert_eq!((b.axis, b.side), (Axis::Engine, Side::Dst));
        assert!(parse(&["cache", "clean", "--kind", "states", "--kind", "tools", "--older-than", "7"]).is_ok());
        assert!(parse(&["cache", "clean", "--kind", "everything"]).is_err());
        assert!(parse(&["export", "--format", "kcidb", "out"]).is_ok());
        assert!(parse(&["export", "--format", "csv", "out"]).is_err());
    }

    #[test]
    fn completions_know_the_flags() {
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "crtest", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("--rerun-failed") && script.contains("completions"), "{script}");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("CRTEST_CACHE") && help.contains("NO_COLOR") && help.contains("125"), "{help}");
    }
}
