//! Verdicts: pure functions from what was observed to PASS/FAIL/ERROR/SKIP.
//!
//! FAIL is for the system under test (the engine, the kernel, the restored
//! program); ERROR is for crtest or its infrastructure (a VM that did not
//! boot, a copy that failed); SKIP carries the reason the cell cannot run.

pub mod known;
pub mod memcheck;
pub mod snapshot;

use crate::verdict::memcheck::Digests;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Skip,
    /// The cell failed, and so did its control (the same dump restored on
    /// another guest of the source kind): the failure belongs to the source
    /// kind's environment, engine or workload, and says nothing about the
    /// pair of kinds. The control's own verdict carries the evidence.
    #[serde(rename = "CONTROL-FAIL")]
    ControlFail,
    Fail,
    Error,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Skip => "SKIP",
            Status::ControlFail => "CONTROL-FAIL",
        })
    }
}

impl Status {
    /// The status as a grid square (at most 5 characters).
    pub fn mark(self) -> &'static str {
        match self {
            Status::ControlFail => "CTRL",
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Skip => "SKIP",
        }
    }
}

/// The stages of a cell, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    BootSrc,
    Reference,
    Dump,
    Transfer,
    Convert,
    BootDst,
    Restore,
    /// Further dump/restore rounds in place (`--iters`).
    Iterate,
    Finish,
    Compare,
}

/// How one stage went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// The system under test failed; the message carries its own words.
    Failed(String),
    /// crtest or the infrastructure broke.
    Broken(String),
    /// The combination cannot run (a feature the workload needs is missing).
    Unsupported(String),
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: Stage,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub secs: f64,
}

/// The verdict of a cell from its stage records: the first stage that did
/// not go well decides; when all went well, the transcripts decide.
pub fn judge(stages: &[StageRecord], expected: Option<&str>, actual: Option<&str>) -> (Status, Option<String>) {
    for r in stages {
        let name = serde_json::to_value(r.stage).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        match &r.outcome {
            Outcome::Ok | Outcome::NotRun => {}
            Outcome::Failed(m) => return (Status::Fail, Some(format!("{name}: {m}"))),
            Outcome::Broken(m) => return (Status::Error, Some(format!("{name}: {m}"))),
            Outcome::Unsupported(m) => return (Status::Skip, Some(format!("{name}: {m}"))),
        }
    }
    match (expected, actual) {
        (Some(e), Some(a)) => match first_difference(e, a) {
            None => (Status::Pass, None),
            Some(diff) => (Status::Fail, Some(format!("compare: {diff}"))),
        },
        _ => (Status::Error, Some("compare: a transcript is missing".into())),
    }
}

/// What a cell's control (same dump, another guest of the source kind) found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlVerdict {
    pub id: String,
    pub status: Status,
}

/// A cell's verdict in the light of its control's: a FAIL counts against the
/// pair of kinds only when the control PASSed; with a control that did not,
/// it is CONTROL-FAIL, its own reason kept after the control's id (the
/// control's reason is the control's own cell).
pub fn against_control(own: (Status, Option<String>), control: &ControlVerdict) -> (Status, Option<String>) {
    match own {
        (Status::Fail, reason) if control.status != Status::Pass => {
            let own = reason.unwrap_or_default();
            (Status::ControlFail, Some(format!("control {} is {} too; this cell: {own}", control.id, control.status)))
        }
        other => other,
    }
}

/// Why an uninterrupted reference run cannot serve as the expected
/// behaviour: the workload's own end-of-run check failed without any C/R,
/// so the workload (not the system under test) is at fault.
pub fn reference_problem(transcript: &str) -> Option<String> {
    let bad = transcript.lines().find(|l| l.starts_with("verify FAIL"))?;
    Some(format!("the uninterrupted reference run failed its own check: `{bad}`"))
}

/// Like [`judge`], then also requires the fds and mappings recorded after
/// the restore to equal those recorded at the dump, and then every page of
/// memory restored from the images to be what it was at the dump.
pub fn judge_with_state(
    stages: &[StageRecord],
    expected: Option<&str>,
    actual: Option<&str>,
    before: Option<&str>,
    after: Option<&str>,
    memory: &Digests,
) -> (Status, Option<String>) {
    let verdict = judge(stages, expected, actual);
    if verdict.0 != Status::Pass {
        return with_memory_cause(verdict, memory);
    }
    match (before, after) {
        (Some(b), Some(a)) => match crate::verdict::snapshot::compare(b, a) {
            None => judge_memory(memory).unwrap_or(verdict),
            Some(diff) => (Status::Fail, Some(format!("process state: {diff}"))),
        },
        _ => (Status::Error, Some("compare: the fd/mapping snapshot of the dump or the restore is missing".into())),
    }
}

/// The verdict of the memory check when it is not a PASS: damaged memory is
/// the system under test's FAIL; digests that are missing or do not parse
/// are crtest's own ERROR.
pub fn judge_memory(memory: &Digests) -> Option<(Status, Option<String>)> {
    match memory.compare() {
        Ok(None) => None,
        Ok(Some(diff)) => Some((Status::Fail, Some(format!("memory: {diff}")))),
        Err(e) => Some((Status::Error, Some(format!("compare: {e}")))),
    }
}

/// The verdict of a cell whose program did not finish: the stages decide,
/// and when a stage FAILed after a restore whose memory was damaged (a
/// restored program that died, say), the first damaged page is named after
/// the stage's reason as the likely cause.
pub fn judge_unfinished(stages: &[StageRecord], memory: &Digests) -> (Status, Option<String>) {
    with_memory_cause(judge(stages, None, None), memory)
}

/// A FAIL's reason (a stage's, or a transcript that departs from the
/// reference) comes first; when the restored memory was damaged too, the
/// first damaged page is named after it, as the likely cause. Any other
/// verdict stands as it is.
fn with_memory_cause((status, reason): (Status, Option<String>), memory: &Digests) -> (Status, Option<String>) {
    match (status, reason, memory.compare()) {
        (Status::Fail, Some(r), Ok(Some(diff))) => (status, Some(format!("{r}; memory: {diff}"))),
        (_, reason, _) => (status, reason),
    }
}

/// [`judge_memory`] as the outcome of `--iters` round `round`.
pub fn round_memory(memory: &Digests, round: u32) -> Outcome {
    match judge_memory(memory) {
        None => Outcome::Ok,
        Some((Status::Fail, why)) => Outcome::Failed(format!("round {round}: {}", why.unwrap_or_default())),
        Some((_, why)) => Outcome::Broken(format!("round {round}: {}", why.unwrap_or_default())),
    }
}

/// Describes the first line where `actual` departs from `expected`.
pub fn first_difference(expected: &str, actual: &str) -> Option<String> {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => return Some(format!("line {}: expected `{x}`, got `{y}`", i + 1)),
            (Some(x), None) => {
                return Some(format!(
                    "transcript ends after line {} (expected {} lines; next expected `{x}`)",
                    a.len(),
                    e.len()
                ))
            }
            (None, Some(y)) => return Some(format!("line {}: unexpected extra line `{y}`", i + 1)),
            (None, None) => unreachable!(),
        }
    }
    // Same lines: only a trailing newline or CR could differ; byte equality is the contract.
    (expected != actual).then(|| "transcripts differ in line endings".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stage: Stage, outcome: Outcome) -> StageRecord {
        StageRecord { stage, outcome, secs: 0.0 }
    }

    #[test]
    fn identical_transcripts_pass() {
        let s = [rec(Stage::Dump, Outcome::Ok), rec(Stage::Restore, Outcome::Ok)];
        assert_eq!(judge(&s, Some("a\nb\n"), Some("a\nb\n")), (Status::Pass, None));
    }

    #[test]
    fn first_bad_stage_decides_and_keeps_engine_words() {
        let s = [
            rec(Stage::Dump, Outcome::Ok),
            rec(
                Stage::Restore,
                Outcome::Failed("Error (criu/cr-restore.c:1): 42 killed by signal 11: Segmentation fault".into()),
            ),
            rec(Stage::Finish, Outcome::Broken("later".into())),
        ];
        let (st, why) = judge(&s, None, None);
        assert_eq!(st, Status::Fail);
        assert_eq!(why.unwrap(), "restore: Error (criu/cr-restore.c:1): 42 killed by signal 11: Segmentation fault");
    }

    #[test]
    fn missing_features_skip() {
        let s = [rec(Stage::Dump, Outcome::Unsupported("criu check --feature timens fails on kernel 5.4".into()))];
        assert_eq!(
            judge(&s, None, None),
            (Status::Skip, Some("dump: criu check --feature timens fails on kernel 5.4".into()))
        );
    }

    #[test]
    fn infrastructure_faults_are_errors() {
        let s = [rec(Stage::BootDst, Outcome::Broken("no ready line within 180s".into()))];
        assert_eq!(judge(&s, Some("x"), None).0, Status::Error);
        assert_eq!(judge(&[], Some("x"), None).0, Status::Error);
    }

    #[test]
    fn a_reference_that_fails_its_own_check_is_unusable() {
        assert_eq!(reference_problem("step 1\nverify ok\ndone\n"), None);
        let why = reference_problem("step 1\nverify FAIL threads left\ndone\n").unwrap();
        assert!(why.contains("`verify FAIL threads left`"), "{why}");
    }

    const MEM: &str = "1 00001000-00003000 rw-p 00000000 [heap]\t0a 0b\n";

    /// Digests whose restore side is `after`, or missing as when the
    /// helper said `said`.
    fn mem(after: Result<&str, &str>) -> Digests {
        let missing = |said: &str| crate::verdict::memcheck::MemcheckError::Missing {
            when: "restore",
            path: "out/after.mem".into(),
            error: "No such file or directory (os error 2)".into(),
            said: said.into(),
        };
        Digests { before: Ok(MEM.into()), after: after.map(str::to_string).map_err(missing) }
    }

    #[test]
    fn state_differences_fail_after_equal_transcripts() {
        let snap = "1 fd 3 pipe:[1]\n";
        let same = mem(Ok(MEM));
        assert_eq!(
            judge_with_state(&[], Some("a\n"), Some("a\n"), Some(snap), Some("1 fd 3 pipe:[2]\n"), &same).0,
            Status::Pass
        );
        let (st, why) = judge_with_state(&[], Some("a\n"), Some("a\n"), Some(snap), Some(""), &same);
        assert_eq!(
            (st, why.unwrap().as_str()),
            (Status::Fail, "process state: 1 missing after restore: pid 1 fd 3 -> pipe")
        );
        assert_eq!(judge_with_state(&[], Some("a\n"), Some("a\n"), None, Some(snap), &same).0, Status::Error);
        // A transcript difference is reported first.
        assert!(judge_with_state(&[], Some("a\n"), Some("b\n"), Some(snap), Some(""), &same)
            .1
            .unwrap()
            .starts_with("compare:"));
    }

    #[test]
    fn damaged_memory_fails_and_missing_digests_are_errors() {
        let snap = "1 fd 3 pipe:[1]\n";
        let judged = |m: &Digests| judge_with_state(&[], Some("a\n"), Some("a\n"), Some(snap), Some(snap), m);
        let (st, why) = judged(&mem(Ok("1 00001000-00003000 rw-p 00000000 [heap]\t0a 0c\n")));
        assert_eq!(
            (st, why.unwrap().as_str()),
            (Status::Fail, "memory: pid 1 map 00001000-00003000 rw-p [heap]: page 1 of 2 differs")
        );
        let (st, why) = judged(&mem(Err("it said: boom")));
        assert_eq!(
            (st, why.unwrap().as_str()),
            (
                Status::Error,
                "compare: the page digests of the restore are missing (out/after.mem: No such file or directory \
                 (os error 2)); memdigest failed: it said: boom"
            )
        );
        assert_eq!(round_memory(&mem(Ok(MEM)), 2), Outcome::Ok);
        assert!(
            matches!(round_memory(&mem(Err("x")), 2), Outcome::Broken(m) if m.starts_with("round 2: compare: the page digests"))
        );
        // A restored program that died is named first, the damaged page after it;
        // a stage that FAILed before any restore has no restore digests to add.
        let died = [rec(Stage::Finish, Outcome::Failed("restored program exited before `done`".into()))];
        let damaged = mem(Ok("1 00001000-00003000 rw-p 00000000 [heap]\t0a 0c\n"));
        assert_eq!(
            judge_unfinished(&died, &damaged),
            (
                Status::Fail,
                Some(
                    "finish: restored program exited before `done`; memory: pid 1 map 00001000-00003000 rw-p \
                     [heap]: page 1 of 2 differs"
                        .into()
                )
            )
        );
        assert_eq!(
            judge_unfinished(&died, &mem(Err("no restore"))).1.unwrap(),
            "finish: restored program exited before `done`"
        );
        let broken = [rec(Stage::Restore, Outcome::Broken("vm gone".into()))];
        assert_eq!(judge_unfinished(&broken, &damaged), (Status::Error, Some("restore: vm gone".into())));
        // A differing transcript speaks first, the damaged page after it.
        let (st, why) = judge_with_state(
            &[],
            Some("a\n"),
            Some("b\n"),
            Some(snap),
            Some(snap),
            &mem(Ok("1 00001000-00003000 rw-p 00000000 [heap]\t0c 0b\n")),
        );
        assert_eq!(st, Status::Fail);
        assert_eq!(
            why.unwrap(),
            "compare: line 1: expected `a`, got `b`; memory: pid 1 map 00001000-00003000 rw-p [heap]: page 0 of 2 differs"
        );
        // The fd/mapping comparison speaks first.
        let (st, why) = judge_with_state(&[], Some("a\n"), Some("a\n"), Some(snap), Some(""), &mem(Err("x")));
        assert_eq!(st, Status::Fail, "{why:?}");
    }

    #[test]
    fn differences_are_described() {
        assert_eq!(first_difference("a\nb\nc\n", "a\nB\nc\n").unwrap(), "line 2: expected `b`, got `B`");
        assert!(first_difference("a\nb\n", "a\n")
            .unwrap()
            .starts_with("transcript ends after line 1 (expected 2 lines"));
        assert_eq!(first_difference("a\n", "a\nz\n").unwrap(), "line 2: unexpected extra line `z`");
        assert_eq!(first_difference("a\n", "a").unwrap(), "transcripts differ in line endings");
        let (st, why) = judge(&[], Some("a\n"), Some("b\n"));
        assert_eq!((st, why.unwrap().as_str()), (Status::Fail, "compare: line 1: expected `a`, got `b`"));
    }

    #[test]
    fn a_fail_counts_only_when_its_control_passed() {
        let fail = || (Status::Fail, Some("restore: Error (x): y".to_string()));
        let ctl = |status| ControlVerdict { id: "w/6.1->6.1".into(), status };
        assert_eq!(against_control(fail(), &ctl(Status::Pass)), fail());
        let (status, reason) = against_control(fail(), &ctl(Status::Fail));
        assert_eq!(status, Status::ControlFail);
        assert_eq!(reason.as_deref(), Some("control w/6.1->6.1 is FAIL too; this cell: restore: Error (x): y"));
        assert_eq!(against_control(fail(), &ctl(Status::Error)).0, Status::ControlFail);
        // Only FAILs move: a PASS, an ERROR or a SKIP stays what it is.
        for own in [Status::Pass, Status::Error, Status::Skip] {
            assert_eq!(against_control((own, None), &ctl(Status::Fail)).0, own);
        }
    }
}
