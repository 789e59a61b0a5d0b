//! Reading the engine's own logs.

/// The engine's own words for why it failed: the first `Error (...)` line of
/// a CRIU log, without the timestamp. Passed over: errors CRIU logs while
/// probing the kernel and then carries on from (a helper command that exited
/// non-zero, a missing diag module), and the closing "Dumping FAILED."
/// summary, unless nothing else is there.
pub fn error_line(log: &str) -> Option<String> {
    const NOISE: &[&str] = &["): exited, status=", "Diag module missing", "FAILED."];
    let lines = error_lines(log);
    lines.iter().find(|l| !NOISE.iter().any(|n| l.contains(n))).or(lines.last()).cloned()
}

/// Every `Error (...)` line of a CRIU log, without timestamps.
pub fn error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let at = l.find("Error (")?;
            Some(l[at..].trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_error_lines_lose_timestamps() {
        let log = "(00.001) Warn (criu/kerndat.c:1): x\n(00.100) Error (criu/cr-dump.c:1314): 1 has rseq but kernel lacks get_rseq_conf feature\n(00.2) Error (criu/cr-dump.c:1700): Dumping FAILED.\n";
        assert_eq!(
            error_line(log).as_deref(),
            Some("Error (criu/cr-dump.c:1314): 1 has rseq but kernel lacks get_rseq_conf feature")
        );
        assert_eq!(error_lines(log).len(), 2);
        assert_eq!(error_line("all good"), None);
        let summary_first = "(0.1) Error (criu/cr-dump.c:1): Dumping FAILED.\n(0.2) Error (criu/x.c:2): real\n";
        assert_eq!(error_line(summary_first).as_deref(), Some("Error (criu/x.c:2): real"));
        assert_eq!(error_line("(0.1) Error (a): Restoring FAILED.").as_deref(), Some("Error (a): Restoring FAILED."));
        let probe_noise = "(0.03) Error (criu/util.c:642): exited, status=1\n(0.4) Error (criu/cr-dump.c:203): 200000 has rseq but kernel lacks get_rseq_conf feature\n(0.5) Error (criu/cr-dump.c:1674): Dump core (pid: 200000) failed with -1\n";
        assert!(error_line(probe_noise).unwrap().ends_with("has rseq but kernel lacks get_rseq_conf feature"));
    }
}
