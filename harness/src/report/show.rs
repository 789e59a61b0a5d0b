//! `crtest show CELL`: one cell's story in the terminal (status, reason,
//! control, known incompatibility, stages, conversion chain, transcript
//! diff, fd/mapping differences, log tails, where its artifacts are).
//! Text from logs and transcripts is shown with control characters escaped,
//! so an artifact can never drive the terminal.

use super::story::Story;
use crate::verdict::Status;
use std::fmt::Write;
use std::path::Path;

/// `--color`: colour when stdout is a terminal and `NO_COLOR` is unset, or always, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour: `always` and `never` win; `auto` colours a
    /// terminal unless `NO_COLOR` is set to something (no-color.org).
    pub fn enabled(self, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// SGR codes, or nothing when colour is off.
struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        match self.0 {
            true => format!("\x1b[{code}m{text}\x1b[0m"),
            false => text.to_string(),
        }
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn status(&self, s: Status) -> String {
        let code = match s {
            Status::Pass => "1;32",
            Status::Fail => "1;31",
            Status::ControlFail => "1;33",
            Status::Error => "1;35",
            Status::Skip => "2",
        };
        self.wrap(code, &s.to_string())
    }
    fn good(&self, ok: bool, t: &str) -> String {
        self.wrap(if ok { "32" } else { "31" }, t)
    }
}

/// Escapes control characters (ESC, CR, BEL...) but keeps tabs.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\t' => out.push(ch),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The story as terminal text; `out_dir` is where the run's output is.
pub fn render(x: &Story, out_dir: &Path, color: bool) -> String {
    let p = Paint(color);
    let mut o = String::new();
    let _ = writeln!(o, "{} {}", p.status(x.status), p.bold(&clean(&x.id)));
    if let Some(r) = &x.reason {
        let _ = writeln!(o, "  reason: {}", clean(r));
    }
    if let Some(k) = &x.known {
        let title = k.title.as_deref().map(|t| format!(": {}", clean(t))).unwrap_or_default();
        let _ = writeln!(o, "  known incompatibility {}{title}", p.bold(&clean(&k.id)));
        for u in &k.upstream {
            let _ = writeln!(o, "    upstream: {}", clean(u));
        }
    }
    match (&x.control, x.control_status) {
        (Some(c), Some(s)) => {
            let _ = writeln!(o, "  control: {} {}", clean(c), p.status(s));
        }
        (Some(c), None) => {
            let _ = writeln!(o, "  control: {}", clean(c));
        }
        (None, _) if x.control_only => o.push_str("  control only (the matrix does not name this cell)\n"),
        _ => {}
    }
    if let Some(n) = x.dump_after {
        let _ = writeln!(o, "  dumped after step {n}");
    }
    section(&mut o, &p, "stages");
    for s in &x.stages {
        let msg = s.message.as_deref().map(|m| format!("  {}", clean(m))).unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<10} {} {:>8.2}s{msg}",
            s.stage,
            p.good(s.outcome == "ok", &format!("{:<11}", s.outcome)),
            s.secs
        );
    }
    if !x.chain.is_empty() {
        section(&mut o, &p, "conversion chain");
        for (i, s) in x.chain.iter().enumerate() {
            let _ = writeln!(o, "  {}", clean(&s.summary(i + 1, x.chain.len())));
            for line in s.note.iter().chain(s.message.iter()) {
                let _ = writeln!(o, "      {}", clean(line));
            }
        }
    }
    if let Some(d) = &x.transcript {
        section(&mut o, &p, &format!("transcript: {}", clean(&d.summary)));
        for (name, lines) in [("reference", &d.expected), ("restored ", &d.actual)] {
            for (n, text) in lines {
                let mark = if *n == d.line { p.wrap("1;31", ">") } else { " ".into() };
                let _ = writeln!(o, "  {name} {mark}{n:>6} {}", clean(text));
            }
        }
    }
    if let Some(s) = &x.state {
        section(&mut o, &p, "fds and mappings after restore vs at dump");
        let _ = writeln!(o, "  {}", clean(s));
    }
    for t in &x.logs {
        if !t.error.is_empty() {
            section(&mut o, &p, &format!("{}: first error", t.name));
            for (n, l) in &t.error {
                let text = clean(l);
                let text = if l.contains("Error (") { p.wrap("1;31", &text) } else { p.dim(&text) };
                let _ = writeln!(o, "  {n:>6} {text}");
            }
        }
        section(&mut o, &p, &format!("{}{}", t.name, if t.cut { " (last lines)" } else { "" }));
        for l in &t.lines {
            let _ = writeln!(o, "  {}", p.dim(&clean(l)));
        }
    }
    if let Some(dir) = x.dir.as_deref().filter(|_| !x.links.is_empty()) {
        section(&mut o, &p, &format!("artifacts in {}", clean(&out_dir.join(dir).display().to_string())));
        let names: Vec<String> =
            x.links.iter().map(|l| format!("{}{}", clean(&l.name), if l.dir { "/" } else { "" })).collect();
        let _ = writeln!(o, "  {}", names.join("  "));
    }
    o
}

fn section(o: &mut String, p: &Paint, title: &str) {
    let _ = writeln!(o, "{}", p.bold(&format!("-- {title}")));
}

/// Cell ids close to a mistyped one, for the error message.
pub fn suggestions<'a>(ids: impl Iterator<Item = &'a str>, wanted: &str) -> Vec<&'a str> {
    let w = wanted.to_lowercase();
    let parts: Vec<&str> = w.split(['/', '-', '>']).filter(|p| !p.is_empty()).collect();
    ids.filter(|id| {
        let id = id.to_lowercase();
        !parts.is_empty() && parts.iter().all(|p| id.contains(p))
    })
    .take(10)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::story::{Depth, Root, Story};
    use crate::result::CellResult;

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        use std::ffi::OsStr;
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(!ColorChoice::Auto.enabled(true, Some(OsStr::new("1"))));
        assert!(ColorChoice::Auto.enabled(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
        assert!(ColorChoice::Always.enabled(false, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn a_failed_cell_reads_top_to_bottom_and_logs_cannot_drive_the_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let cd = dir.path().join("cells/counter/6.1--5.10");
        std::fs::create_dir_all(&cd).unwrap();
        std::fs::write(cd.join("restore.log"), "ok\nError (criu/x.c:1): boom\x1b]0;owned\x07\n").unwrap();
        std::fs::write(cd.join("reference.transcript"), "step 1\nstep 2\nstep 3\n").unwrap();
        std::fs::write(cd.join("restored.transcript"), "step 1\nstep 2\n").unwrap();
        let c: CellResult = serde_json::from_value(serde_json::json!({
            "id": "counter/6.1->5.10", "workload": "counter", "src": "6.1", "dst": "5.10", "status": "FAIL",
            "reason": "restore: Error (criu/x.c:1): boom", "control": "counter/6.1->6.1", "control_status": "PASS",
            "known": "so-buf-lock", "artifacts": "cells/counter/6.1--5.10",
            "stages": [{"stage": "dump", "status": "ok", "secs": 3.25},
                       {"stage": "restore", "status": "failed", "message": "Error (criu/x.c:1): boom", "secs": 1.0}],
            "conversion": [{"converter": "identity", "from": "criu-3.17", "to": "criu-3.17", "ok": true,
                            "message": null, "secs": 0.01, "checked": 11}]
        }))
        .unwrap();
        let root = Root { disk: dir.path(), href: String::new() };
        let story = Story::of(&c, &root, None, Depth::Full);
        let text = render(&story, Path::new("out"), false);
        let order = [
            "FAIL counter/6.1->5.10",
            "reason: restore:",
            "known incompatibility so-buf-lock",
            "control: counter/6.1->6.1 PASS",
            "-- stages",
            "dump       ok",
            "3.25s",
            "restore    failed",
            "-- conversion chain",
            "step 1/1 criu-3.17 -> criu-3.17 (identity): ok",
            "-- transcript: transcript ends after line 2",
            "reference  ",
            "-- restore.log",
            "boom\\x1b]0;owned\\x07",
            "-- artifacts in out/cells/counter/6.1--5.10",
            "restore.log",
        ];
        let mut at = 0;
        for want in order {
            let found = text[at..].find(want).unwrap_or_else(|| panic!("`{want}` after {at} in\n{text}"));
            at += found;
        }
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
        let coloured = render(&story, Path::new("out"), true);
        assert!(coloured.starts_with("\x1b[1;31mFAIL\x1b[0m"), "{coloured:?}");
        assert_eq!(coloured.matches("\x1b]").count(), 0, "an escape from the log got through");
    }

    #[test]
    fn close_ids_are_suggested() {
        let ids = ["counter/6.1->6.12", "counter/6.12->6.1", "pipe/6.1->6.1"];
        assert_eq!(suggestions(ids.into_iter(), "counter/6.1"), ["counter/6.1->6.12", "counter/6.12->6.1"]);
        assert!(suggestions(ids.into_iter(), "nothing").is_empty());
    }
}
