//! The listing commands: `kernels list|fetch`, `workloads list`, `formats`
//! and `completions`.

use crate::config::formats::Formats;
use crate::kernel::fetch;
use crate::prepare::{self, Project};
use crate::report::progress::Progress;
use crate::util::fsutil;
use anyhow::Result;
use std::io::Write;
use std::path::Path;

/// Each catalog kernel: id, version, the release cached (if any), its source.
pub fn kernels_list(project: &Project, cache: &Path, out: &mut dyn Write) -> Result<i32> {
    writeln!(out, "{:<10} {:<8} {:<28} SOURCE", "ID", "VERSION", "CACHED RELEASE")?;
    for spec in &project.catalog.kernels {
        let cached = fetch::cached(cache, spec).map(|k| k.release).unwrap_or_else(|| "(not cached)".into());
        let source = match &spec.source {
            crate::kernel::Source::Debian { suite, packages } => format!("debian {suite}: {}", packages.join(" ")),
            crate::kernel::Source::Local(l) => format!("local {}", l.bzimage.display()),
        };
        writeln!(out, "{:<10} {:<8} {:<28} {source}", spec.id, spec.version.to_string(), cached)?;
    }
    Ok(0)
}

/// Fetches the kernels `ids` names (all when empty), progress on stderr.
pub fn kernels_fetch(project: &Project, ids: Vec<String>, out: &mut dyn Write) -> Result<i32> {
    let ids = if ids.is_empty() { project.catalog.kernels.iter().map(|k| k.id.clone()).collect() } else { ids };
    let progress = Progress::new(true);
    let kernels = prepare::kernels(project, &ids, &fsutil::cache_dir(), &progress)?;
    for (id, k) in kernels {
        writeln!(out, "{id}: {} ({})", k.release, k.vmlinuz.display())?;
    }
    Ok(0)
}

/// Each workload with what it exercises, its known gaps and what it needs.
pub fn workloads_list(project: &Project, out: &mut dyn Write) -> Result<i32> {
    for w in &project.library.workloads {
        writeln!(out, "{:<16} {}", w.name, w.summary)?;
        writeln!(out, "{:<16} exercises: {}", "", w.exercises.join(", "))?;
        let mut needs = Vec::new();
        if let Some(k) = &w.min_kernel {
            needs.push(format!("kernel >= {k}"));
        }
        needs.extend(w.features.iter().map(|f| format!("criu feature {f}")));
        needs.extend(w.dump_opts.iter().map(|o| format!("dump {o}")));
        needs.extend(w.restore_opts.iter().map(|o| format!("restore {o}")));
        for g in &w.known_gaps {
            writeln!(out, "{:<16} known gap of {}: {}", "", g.formats.join(", "), g.reason)?;
        }
        if !needs.is_empty() {
            writeln!(out, "{:<16} needs: {}", "", needs.join(", "))?;
        }
    }
    writeln!(out, "{} workloads", project.library.workloads.len())?;
    Ok(0)
}

/// The project's formats, or those of `file`.
pub fn load_formats(project: &Project, file: Option<&Path>) -> Result<Formats> {
    Ok(match file {
        None => project.formats.clone(),
        Some(f) => project.formats.reload(f)?,
    })
}

/// Format versions with the engines that write them, then the converters
/// and the neighbouring steps that have none.
pub fn formats_list(project: &Project, file: Option<&Path>, out: &mut dyn Write) -> Result<i32> {
    let formats = load_formats(project, file)?;
    writeln!(out, "formats (oldest first) from {}:", formats.path.display())?;
    for v in &formats.versions {
        let engines: Vec<&str> =
            formats.engine_formats.iter().filter(|(_, f)| *f == v).map(|(e, _)| e.as_str()).collect();
        writeln!(out, "  {v:<12} written by {}", if engines.is_empty() { "-".into() } else { engines.join(", ") })?;
    }
    if let Some(host) = formats.of_engine(crate::engine::HOST) {
        writeln!(out, "  (the host's criu writes {host})")?;
    }
    writeln!(out, "converters:")?;
    for s in &formats.steps {
        writeln!(out, "  {:<12} -> {:<12} {}", s.from, s.to, s.using.name())?;
    }
    for pair in formats.versions.windows(2) {
        for (a, b) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            if !formats.steps.iter().any(|s| &s.from == a && &s.to == b) {
                writeln!(out, "  {a:<12} -> {b:<12} (none: cells needing this step are skipped)")?;
            }
        }
    }
    Ok(0)
}

/// The completion script of `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<i32> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), "crtest", &mut script);
    write!(out, "{}", String::from_utf8_lossy(&script))?;
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::project;

    #[test]
    fn workloads_list_shows_needs_and_count() {
        let (_dir, project) = project();
        let mut out = Vec::new();
        assert_eq!(workloads_list(&project, &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{:<16} s", "counter"));
        assert!(lines.contains(&format!("{:<16} needs: kernel >= 6.0", "").as_str()), "{text}");
        // counter needs nothing: no needs line between its lines and pipe's.
        assert!(lines[2].starts_with("pipe "), "{text}");
        assert_eq!(lines.last(), Some(&"2 workloads"));
    }

    #[test]
    fn formats_list_names_writers_and_missing_steps() {
        let (dir, project) = project();
        let mut out = Vec::new();
        assert_eq!(formats_list(&project, None, &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        // Which format the host's criu writes depends on the machine.
        let text: Vec<&str> = text.lines().filter(|l| !l.starts_with("  (the host's criu writes ")).collect();
        let header = format!("formats (oldest first) from {}:", dir.path().join("formats.yaml").display());
        let expected = [
            header.as_str(),
            "  criu-4.1     written by criu-4.1",
            "  criu-4.2     written by criu-4.2",
            "converters:",
            "  criu-4.2     -> criu-4.1     pagemap-nr-pages",
            "  criu-4.1     -> criu-4.2     (none: cells needing this step are skipped)",
        ];
        assert_eq!(text, expected);
    }

    #[test]
    fn kernels_list_says_what_is_not_cached() {
        let (_dir, project) = project();
        let cache = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        kernels_list(&project, cache.path(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("ID         VERSION  CACHED RELEASE"), "{text}");
        let row = text.lines().find(|l| l.starts_with("6.12 ")).unwrap();
        assert!(row.contains("(not cached)") && row.ends_with("debian bookworm-security: c"), "{row}");
        assert_eq!(text.lines().count(), 4);
    }

    #[test]
    fn completions_write_the_script() {
        let mut out = Vec::new();
        completions(clap_complete::Shell::Bash, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("--rerun-failed"));
    }
}
