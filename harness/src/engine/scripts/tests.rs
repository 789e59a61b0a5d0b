use super::*;
use std::process::Command;

pub(super) fn w() -> Workload {
    serde_yaml_ng::from_str(
        "name: counter\nsummary: s\nsteps: 40\ndump_after: 10\ndump_opts: [\"--tcp-established\"]\n",
    )
    .unwrap()
}

/// A workload with every field a user controls set to what validation
/// lets through.
fn user() -> Workload {
    serde_yaml_ng::from_str(
        "name: app\nsummary: s\nsteps: 40\ndump_after: 10\npath: /p\nargs: [\"a'b\", \"$(x)\"]\n\
         transcript: out.txt\ndump_root: root.pid\nenv: {A_B: \"it's $HOME\"}\n\
         dump_opts: [\"--x={dir}/'`y`\"]\nrestore_opts: [\"--root\", \"{dir}\"]\n",
    )
    .unwrap()
}

/// What `sh` prints running `header` then `print`.
fn sh(header: &Header, print: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(format!("{}{print}", header.render())).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The words of list `name` as the body sees them, `<...>` each.
fn words(header: &Header, name: &str) -> String {
    sh(header, &format!("eval \"set -- ${name}\"; printf '<%s>' \"$@\""))
}

#[test]
fn scripts_carry_pid_base_env_and_options() {
    let op = OpPaths::new("d3");
    let s = start_header(&op, &w(), 40, 100, Some(103000));
    assert_eq!(s.get("NS_LAST_PID"), Some("102999"));
    assert_eq!(words(&s, "WORKLOAD_ENV"), "<GLIBC_TUNABLES=glibc.pthread.rseq=0>");
    assert_eq!(s.get("PROG"), Some("/opt/crtest/bin/counter"));
    assert_eq!(words(&s, "ARGS"), "</run/crtest/d3><40>");
    assert_eq!(s.get("STDOUT"), Some("/run/crtest/d3.stdout"));
    assert_eq!(start_header(&op, &w(), 40, 100, None).get("NS_LAST_PID"), Some(""));
    let d = dump_header(&op, &w(), 10, 60);
    assert_eq!(words(&d, "DUMP_OPTS"), "<--tcp-established>");
    assert_eq!(
        (d.get("AFTER"), d.get("TIMEOUT"), d.get("T")),
        (Some("10"), Some("60"), Some("/run/crtest/d3/transcript"))
    );
    assert_eq!((d.get("PAT"), d.get("ENDS"), d.get("DUMP_ROOT")), (Some("^step "), Some("done"), Some("")));
    // The action script's page digests come from the helper in the image.
    assert_eq!(d.get("MEMDIGEST"), Some("/opt/crtest/libexec/memdigest"));
    assert!(dump_script(&op, &w(), 10, 60).ends_with(&format!("{LIB}{DUMP}")));
    let r = restore_header(&OpPaths::new("x5"), &op, &w(), 103000);
    assert_eq!(
        (r.get("IN"), r.get("OUT"), r.get("D")),
        (Some("/mnt/xfer/in/x5"), Some("/mnt/xfer/out/x5"), Some("/run/crtest/d3"))
    );
    assert_eq!((r.get("PID"), r.get("DIR_ID")), (Some("103000"), Some("d3")));
    let i = iterate_header(&OpPaths::new("i4"), &op, &w(), 103000, 3, 40, 60);
    assert_eq!((i.get("ID"), i.get("DIR_ID"), i.get("PID")), (Some("i4"), Some("d3"), Some("103000")));
    assert_eq!((i.get("APART"), i.get("LAST")), (Some("3"), Some("38")));
    assert!(ITERATE.find("criu_dump").unwrap() < ITERATE.find("criu_restore \"/tmp/img-$ID\"").unwrap());
}

/// What a user sets reaches the body as it was written, and `{dir}` in an
/// engine option becomes `$D` and nothing else.
#[test]
fn user_fields_reach_the_body_literally() {
    let (op, d) = (OpPaths::new("r5"), OpPaths::new("d3"));
    let s = start_header(&d, &user(), 40, 100, None);
    assert_eq!(words(&s, "WORKLOAD_ENV"), "<A_B=it's $HOME><GLIBC_TUNABLES=glibc.pthread.rseq=0>");
    assert_eq!(words(&s, "ARGS"), "<a'b><$(x)>");
    assert_eq!(s.get("STDOUT"), Some("/run/crtest/d3.stdout"));
    let r = restore_header(&op, &d, &user(), 1000);
    assert_eq!(words(&r, "DUMP_OPTS"), "<--x=/run/crtest/d3/'`y`>");
    assert_eq!(words(&r, "RESTORE_OPTS"), "<--root></run/crtest/d3>");
    assert_eq!(sh(&r, "printf '%s|%s|%s' \"$T\" \"$DUMP_ROOT\" \"$ENDS\""), "/run/crtest/d3/out.txt|root.pid|exit");
    let f = Header::new().words("FEATURES", ["a", "b'c $(x)"].map(quote).to_vec());
    assert_eq!(words(&f, "FEATURES"), "<a><b'c $(x)>");
}

/// Every script parses as shell, with the fields a user controls set
/// to what validation lets through.
#[test]
fn scripts_parse_with_user_fields() {
    let w = user();
    let (op, d) = (OpPaths::new("r5"), OpPaths::new("d3"));
    for script in [
        start_script(&d, &w, 40, 100, Some(1000)),
        dump_script(&d, &w, 10, 60),
        restore_script(&op, &d, &w, 1000),
        iterate_script(&op, &d, &w, 1000, 3, 40, 60),
        wait_script(&op, &d, &w, 1000, 60),
        predump_script(&d, &w, 10, 2, 60),
        dump_to_page_server_script(&d, &w, 10, 60, "10.77.0.2", 27000),
        page_server_script(&op, "10.77.0.2", 27000),
        page_server_collect_script(&op, 60),
        lazy_dump_script(&d, &w, 10, 60, "10.77.0.1", 27001),
        lazy_dump_wait_script(&d, 60),
        restore_lazy_script(&op, &d, &w, 1000, "10.77.0.1", 27001),
        feature_script(&["a", "b'c"]),
    ] {
        let out = Command::new("sh").arg("-n").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Asserts that `body` spells no exit code but 0: they come from the header.
pub(super) fn assert_codes_from_header(body: &str) {
    for (at, _) in body.match_indices("exit ") {
        let next = body[at + 5..].chars().next().unwrap_or(' ');
        assert!(!next.is_ascii_digit() || next == '0', "{}", &body[at..]);
    }
}

#[test]
fn bodies_use_the_exit_codes_of_the_header() {
    for body in [LIB, START, DUMP, RESTORE, ITERATE, WAIT, FEATURES] {
        assert_codes_from_header(body);
    }
}

#[test]
fn dir_placeholder_expands_in_the_guest() {
    assert_eq!(options(&["--root".into(), "{dir}".into()]), ["'--root'", "''\"$D\"''"]);
    // The rest of an option with `{dir}` stays inert.
    assert_eq!(options(&["--x={dir}/$(id)".into()]), ["'--x='\"$D\"'/$(id)'"]);
}

/// The wait script on this host: a finished program whose transcript cannot
/// reach the share is a copy failure in the script's own words, never a
/// clean exit that leaves the host without a transcript.
#[test]
fn a_transcript_that_cannot_be_copied_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("transcript");
    std::fs::write(&t, "step 1\ndone\n").unwrap();
    let run = |out: &std::path::Path| {
        let header = Header::new()
            .var("ID", "w1")
            .var("DIR_ID", "d1")
            .var("OUT", out.display())
            .var("T", t.display())
            .var("ENDS", "done")
            .var("PID", 999_999_999u32)
            .var("TIMEOUT", 1);
        Command::new("sh").arg("-c").arg(compose(&header, WAIT)).output().unwrap()
    };
    let good = dir.path().join("out");
    let r = run(&good);
    assert_eq!(r.status.code(), Some(0), "{r:?}");
    assert_eq!(std::fs::read_to_string(good.join("transcript")).unwrap(), "step 1\ndone\n");
    // OUT below a regular file: no directory can be made there.
    let bad = t.join("out");
    let r = run(&bad);
    assert_eq!(r.status.code(), Some(crate::engine::exit::rc::COPY_FAILED), "{r:?}");
    assert!(String::from_utf8_lossy(&r.stdout).starts_with("copying the transcript to the share failed: "), "{r:?}");
}
