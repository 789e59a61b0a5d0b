//! The `crtest` command: parses arguments, hands each subcommand to its
//! function in the library with stdout and stderr as writers, and turns
//! errors into exit statuses.

use anyhow::Result;
use clap::Parser;
use crtest::cli::{CacheCommand, Cli, Command, ExportFormat, KernelsCommand, WorkloadsCommand};
use crtest::commands::{self, Out};
use crtest::prepare::Project;
use crtest::tools::{bench, compare};
use crtest::util::fsutil;
use crtest::vm::reaper;
use std::io::{self, IsTerminal, Write};

fn main() {
    // SIGPIPE stays ignored (Rust's default): a child tool that exits early
    // must give crtest an EPIPE to report, never kill it. Output piped into
    // `head` ends quietly through `Stdout` instead.
    let cli = Cli::parse();
    let mut stderr = io::stderr();
    let mut out = Out { stdout: &mut Stdout, stderr: &mut stderr };
    let code = match dispatch(cli.command, &mut out) {
        Ok(code) => code,
        Err(_) if reaper::interrupted() => reaper::EXIT_INTERRUPTED,
        Err(e) => {
            eprintln!("crtest: error: {e:#}");
            2
        }
    };
    // An interrupted command ends 130 whatever it got to write (so `git bisect run` stops).
    std::process::exit(if reaper::interrupted() { reaper::EXIT_INTERRUPTED } else { code });
}

fn dispatch(command: Command, out: &mut Out) -> Result<i32> {
    match command {
        Command::Run(args) => commands::run::run(Project::load()?, args, out),
        Command::Plan { select, format, seed } => {
            commands::plan::plan(&Project::load()?, &select, format, seed, out.stdout)
        }
        Command::Kernels { command: KernelsCommand::List } => {
            commands::lists::kernels_list(&Project::load()?, &fsutil::cache_dir(), out.stdout)
        }
        Command::Kernels { command: KernelsCommand::Fetch { ids } } => {
            commands::lists::kernels_fetch(&Project::load()?, ids, out.stdout)
        }
        Command::Workloads { command: WorkloadsCommand::List } => {
            commands::lists::workloads_list(&Project::load()?, out.stdout)
        }
        Command::Cell(args) => commands::cell::cell(Project::load()?, args, out),
        Command::Bench { kernel, workload, runs, accel, no_resume, vs_virtme } => {
            let args = bench::BenchArgs { kernel, workload, runs, accel, resume: !no_resume, vs_virtme };
            Ok(bench::run(&Project::load()?, &args, out.stdout)?)
        }
        Command::Merge { dirs, out: dir, matrix } => {
            commands::results::merge(&Project::load()?, &dirs, &dir, &matrix, out.stdout)
        }
        Command::Formats { formats } => {
            commands::lists::formats_list(&Project::load()?, formats.as_deref(), out.stdout)
        }
        Command::Convert { from, to, formats, input, output } => {
            let project = Project::load()?;
            commands::convert::convert(&project, (&from, &to), formats.as_deref(), (&input, &output), out)
        }
        Command::Compare { baseline, new, allow_removed, allow_skip, allow_control_fail, junit } => {
            let allow = compare::Allow { removed: allow_removed, skip: allow_skip, control_fail: allow_control_fail };
            commands::results::compare(&baseline, &new, allow, junit.as_deref(), out.stdout)
        }
        Command::Bisect(args) => commands::bisect::run(Project::load()?, args, out),
        Command::Cache { command } => {
            commands::cache::cache(&fsutil::cache_dir(), command.unwrap_or(CacheCommand::Show), out.stdout)
        }
        Command::Export { format: ExportFormat::Kcidb, out: file, dir } => {
            commands::results::export_kcidb(&dir, file.as_deref(), out.stdout)
        }
        Command::Completions { shell } => commands::lists::completions(shell, out.stdout),
        Command::Report { dir } => commands::results::report(&dir, out.stdout),
        Command::Show { cell, out: dir, color } => {
            let terminal = io::stdout().is_terminal();
            commands::results::show(&cell, &dir, color, terminal, out.stdout)
        }
    }
}

/// Standard output for command results: a reader that went away
/// (`crtest plan | head`) ends crtest quietly instead of failing the
/// command; any other write error ends it with status 2. Each write holds
/// the stdout lock, so a line is never interleaved.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match io::stdout().lock().write(buf) {
            // `write_all` retries these itself.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            other => or_end(other),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        or_end(io::stdout().lock().write_all(buf))
    }

    fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
        or_end(io::stdout().lock().write_fmt(args))
    }

    fn flush(&mut self) -> io::Result<()> {
        or_end(io::stdout().lock().flush())
    }
}

/// A write to stdout that worked, or the end of crtest: never an error.
fn or_end<T>(written: io::Result<T>) -> io::Result<T> {
    Ok(written.unwrap_or_else(|e| stdout_failed(e)))
}

/// A reader that went away ends crtest quietly; any other write error is reported.
fn stdout_failed(e: io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        reaper::kill_all();
        std::process::exit(0);
    }
    eprintln!("crtest: error: writing to stdout: {e}");
    std::process::exit(2);
}
