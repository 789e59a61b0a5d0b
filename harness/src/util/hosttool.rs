//! Running the host tools crtest depends on (apt, dpkg-deb, xz, zstd, ...).
//! A tool that fails is reported with its name, its exit status and the
//! tail of its stderr, bounded so a chatty tool cannot flood a message.

use std::process::{Command, ExitStatus, Output};

/// At most this much of a failing tool's stderr goes into an error.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// ...and at most this many of its last lines.
pub const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("could not run {tool}: {source}")]
    Spawn { tool: String, source: std::io::Error },
    #[error("{tool} {status}{}", tail_suffix(.stderr))]
    Failed { tool: String, status: String, stderr: String },
}

fn tail_suffix(stderr: &str) -> String {
    match stderr.is_empty() {
        true => String::new(),
        false => format!(": {stderr}"),
    }
}

/// "exited with status N" or "was killed by signal S".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => "ended abnormally".into(),
    }
}

/// The last lines of `bytes` (lossy UTF-8), bounded in bytes and lines,
/// with a marker when something was cut.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(STDERR_TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let lines: Vec<&str> = text[start..].lines().collect();
    let keep = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
    let cut = start > 0 || keep.len() < lines.len();
    let body = keep.join("\n");
    match cut {
        true => format!("[...] {body}"),
        false => body,
    }
}

/// Runs `cmd` to completion; an error unless it exits 0. `tool` names it in
/// messages (e.g. `dpkg-deb -x linux-image.deb`).
pub fn output(cmd: &mut Command, tool: &str) -> Result<Output, ToolError> {
    let out = cmd.output().map_err(|source| ToolError::Spawn { tool: tool.into(), source })?;
    if !out.status.success() {
        return Err(ToolError::Failed { tool: tool.into(), status: describe(out.status), stderr: tail(&out.stderr) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_tool_status_and_a_bounded_tail() {
        let e = output(Command::new("sh").args(["-c", "yes noise | head -n 5000 >&2; exit 3"]), "noisy").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("noisy exited with status 3: [...] noise"), "{msg}");
        assert!(msg.lines().count() <= STDERR_TAIL_LINES, "{msg}");
        let e = output(Command::new("sh").args(["-c", "kill -9 $$"]), "victim").unwrap_err();
        assert_eq!(e.to_string(), "victim was killed by signal 9");
        let e = output(&mut Command::new("/nonexistent/tool"), "ghost").unwrap_err();
        assert!(e.to_string().starts_with("could not run ghost: "), "{e}");
        assert_eq!(output(Command::new("true").arg("x"), "true").unwrap().status.code(), Some(0));
    }

    #[test]
    fn tail_keeps_short_text_whole() {
        assert_eq!(tail(b"one\ntwo\n"), "one\ntwo");
        assert!(tail("é".repeat(5000).as_bytes()).len() <= STDERR_TAIL_BYTES + 6);
    }
}
