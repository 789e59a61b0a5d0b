//! The cell flow on fake guests: every stage outcome and the verdict it
//! gives, controls, waves and iterations.

use super::fake::{cell, run_fake, stages, verdict, Script};
use crate::engine::{rc, OpKind};
use crate::verdict::{Stage, Status};

const DIAG: &str = "counter/6.1->6.1";
const SRC: &str = "6.1";
const DST: &str = "6.1~restore";

fn exits(vm: &str, kind: OpKind, code: i32) -> Script {
    Script { exits: [((vm.to_string(), kind), code)].into(), ..Script::default() }
}

fn one(script: Script) -> (Status, String) {
    let (out, _) = run_fake(vec![cell("counter", "6.1", "6.1")], script, 1);
    verdict(&out, DIAG)
}

#[test]
fn a_clean_run_passes_through_every_stage_in_order() {
    let (out, script) = run_fake(vec![cell("counter", "6.1", "6.1")], Script::default(), 1);
    assert_eq!(verdict(&out, DIAG), (Status::Pass, String::new()));
    use Stage::*;
    assert_eq!(stages(&out, DIAG), [BootSrc, Reference, Dump, Transfer, Convert, BootDst, Restore, Finish, Compare]);
    let ran = script.ran.lock().unwrap();
    // The dump happens on the source guest, the restore on the other guest of the kind.
    assert!(ran.iter().any(|(vm, l)| vm == SRC && l.starts_with("dump counter after step 3")));
    assert!(ran.iter().any(|(vm, l)| vm == DST && l == "restore counter/6.1->6.1"));
    assert!(!ran.iter().any(|(vm, l)| vm == SRC && l.starts_with("restore")));
    assert_eq!(out.vms.len(), 2, "both guests powered off with their records");
}

#[test]
fn source_side_outcomes() {
    let down = Script { down: [SRC.to_string()].into(), ..Script::default() };
    let (s, why) = one(down);
    assert_eq!(s, Status::Error);
    assert!(why.contains("VM for 6.1 did not boot: boot of 6.1 timed out"), "{why}");

    let (s, why) = one(exits(SRC, OpKind::StartReference, rc::SETUP));
    assert_eq!(s, Status::Error);
    assert!(why.contains("starting the reference run failed"), "{why}");

    let (s, why) = one(exits(SRC, OpKind::WaitReference, rc::FINISH_TIMEOUT));
    assert_eq!(s, Status::Error);
    assert!(why.contains("the uninterrupted reference run did not finish (script rc 41)"), "{why}");

    // A transcript that never reached the share is crtest's, said as such.
    let (s, why) = one(exits(SRC, OpKind::WaitReference, rc::COPY_FAILED));
    assert_eq!(s, Status::Error);
    assert!(why.starts_with("reference: reference run: "), "{why}");

    let (s, why) = one(exits(SRC, OpKind::StartDump, rc::SETUP));
    assert_eq!(s, Status::Error);
    assert!(why.contains("starting the workload failed"), "{why}");

    let (s, why) = one(exits(SRC, OpKind::Dump, rc::DUMP_FAILED));
    assert_eq!(s, Status::Fail, "the engine's own failure is the system under test's");
    assert!(why.contains("Error (criu/mem.c:9): fake dump error"), "{why}");

    let (s, why) = one(exits(SRC, OpKind::Dump, rc::COPY_FAILED));
    assert_eq!(s, Status::Error);
    assert!(why.contains("dump script rc 30"), "{why}");

    let (s, why) = one(exits(SRC, OpKind::Dump, rc::EXITED_BEFORE_DUMP));
    assert_eq!(s, Status::Error);
    assert!(why.contains("dump script rc 10"), "{why}");
}

#[test]
fn a_failed_dump_goes_straight_to_judge() {
    let (out, script) = run_fake(vec![cell("counter", "6.1", "6.1")], exits(SRC, OpKind::Dump, rc::DUMP_FAILED), 1);
    assert_eq!(stages(&out, DIAG), [Stage::BootSrc, Stage::Reference, Stage::Dump]);
    assert!(!script.ran.lock().unwrap().iter().any(|(vm, _)| vm == DST), "nothing runs on the target");
}

#[test]
fn target_side_outcomes() {
    let (s, why) = one(Script { down: [DST.to_string()].into(), ..Script::default() });
    assert_eq!(s, Status::Error);
    assert!(why.contains("VM for 6.1~restore did not boot"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Restore, rc::RESTORE_FAILED));
    assert_eq!(s, Status::Fail);
    assert!(why.contains("Error (criu/files.c:7): fake restore error"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Restore, rc::COPY_FAILED));
    assert_eq!(s, Status::Error);
    assert!(why.contains("restore script rc 30"), "{why}");

    let (s, why) = one(Script { faults: [(DST.to_string(), OpKind::Restore)].into(), ..Script::default() });
    assert_eq!(s, Status::Error, "a VM fault is crtest's, never the kernel's");
    assert!(why.contains("QEMU exited"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Finish, rc::DIED));
    assert_eq!(s, Status::Fail);
    assert!(why.contains("restored program exited before `done`; last transcript line `done`"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Finish, rc::FINISH_TIMEOUT));
    assert_eq!(s, Status::Fail);
    assert!(why.contains("did not finish within"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Finish, rc::COPY_FAILED));
    assert_eq!(s, Status::Error, "a transcript lost on its way is crtest's");
    assert!(why.contains("wait script rc 30"), "{why}");

    let (s, why) = one(exits(DST, OpKind::Finish, 1));
    assert_eq!(s, Status::Error);
    assert!(why.contains("wait script rc 1"), "{why}");
}

#[test]
fn what_the_restored_program_did_decides_last() {
    let (s, why) =
        one(Script { restored_transcript: Some("step 1\nstep 2\nstep 9\ndone\n".into()), ..Script::default() });
    assert_eq!(s, Status::Fail);
    assert!(why.starts_with("compare: "), "{why}");

    let (s, why) = one(Script {
        restored_snap: Some(
            "200001 fd 0 /tmp/other\n200001 map 00400000-00401000 r-xp 00000000 /opt/crtest/bin/counter\n".into(),
        ),
        ..Script::default()
    });
    assert_eq!(s, Status::Fail);
    assert!(why.contains("process state"), "{why}");
}

#[test]
fn a_missing_engine_feature_skips_with_the_reason() {
    let script = Script { missing_features: ["uffd-noncoop".to_string()].into(), ..Script::default() };
    let (out, _) = run_fake(vec![cell("lazy", "6.1", "6.1"), cell("counter", "6.1", "6.1")], script, 1);
    let (s, why) = verdict(&out, "lazy/6.1->6.1");
    assert_eq!(s, Status::Skip);
    assert!(why.contains("`criu check --feature uffd-noncoop` fails on kernel 6.1"), "{why}");
    assert_eq!(verdict(&out, DIAG).0, Status::Pass, "other workloads of the guest still run");
}

#[test]
fn a_cross_cell_is_judged_against_its_control() {
    let cells = || vec![cell("counter", "6.1", "6.12"), cell("counter", "6.1", "6.1")];
    // The restore fails on both targets: the control failing makes the cross cell CONTROL-FAIL.
    let both = Script {
        exits: [
            (("6.12~restore".into(), OpKind::Restore), rc::RESTORE_FAILED),
            ((DST.into(), OpKind::Restore), rc::RESTORE_FAILED),
        ]
        .into(),
        ..Script::default()
    };
    let (out, _) = run_fake(cells(), both, 1);
    let (s, why) = verdict(&out, "counter/6.1->6.12");
    assert_eq!(s, Status::ControlFail);
    assert!(why.starts_with("control counter/6.1->6.1 is FAIL too"), "{why}");
    assert_eq!(verdict(&out, DIAG).0, Status::Fail);
    // Only the cross cell fails: a FAIL that stands.
    let (out, _) = run_fake(cells(), exits("6.12~restore", OpKind::Restore, rc::RESTORE_FAILED), 1);
    assert_eq!(verdict(&out, "counter/6.1->6.12").0, Status::Fail);
    assert_eq!(out.cells.iter().find(|c| c.cell.id == "counter/6.1->6.12").unwrap().control_status, Some(Status::Pass));
}

#[test]
fn one_workload_restores_once_per_wave() {
    let cells = vec![cell("counter", "5.10", "6.1"), cell("counter", "6.12", "6.1"), cell("tcp", "6.12", "6.1")];
    let (out, script) = run_fake(cells, Script::default(), 1);
    assert!(out.cells.iter().all(|c| c.status == Status::Pass), "{:?}", out.cells);
    let on_target: Vec<String> =
        script.ran.lock().unwrap().iter().filter(|(vm, _)| vm == DST).map(|(_, l)| l.clone()).collect();
    let pos =
        |label: &str| on_target.iter().position(|l| l == label).unwrap_or_else(|| panic!("{label}: {on_target:?}"));
    // Two counters never run side by side; counter and tcp do.
    assert!(pos("finish counter/5.10->6.1") < pos("restore counter/6.12->6.1"));
    assert!(pos("restore tcp/6.12->6.1") < pos("finish counter/5.10->6.1"));
}

#[test]
fn iterations_add_rounds_and_fail_with_the_round() {
    let (out, _) = run_fake(vec![cell("counter", "6.1", "6.1")], Script::default(), 3);
    assert_eq!(verdict(&out, DIAG).0, Status::Pass);
    assert!(stages(&out, DIAG).contains(&Stage::Iterate));

    let (out, _) = run_fake(vec![cell("counter", "6.1", "6.1")], exits(DST, OpKind::Iterate, rc::DUMP_FAILED), 2);
    let (s, why) = verdict(&out, DIAG);
    assert_eq!(s, Status::Fail);
    assert!(why.contains("round 2: Error (criu/cr-dump.c:1): fake iteration error"), "{why}");
    assert!(!stages(&out, DIAG).contains(&Stage::Finish), "a failed round ends the cell");

    let (out, _) = run_fake(vec![cell("counter", "6.1", "6.1")], exits(DST, OpKind::Iterate, rc::NO_ROOM), 2);
    assert_eq!(verdict(&out, DIAG).0, Status::Pass, "no room for another round is no failure");
}

#[test]
fn an_interrupt_stops_guest_work_and_cuts_later_cells_short() {
    // One target guest, two waves (one workload): the interrupt comes during the second.
    let plain = |src: &str| crate::plan::Cell { control: None, ..cell("counter", src, "6.1") };
    let script = Script { interrupt_after: Some("restore counter/6.12->6.1".into()), ..Script::default() };
    let (out, script) = run_fake(vec![plain("5.10"), plain("6.12")], script, 1);
    let ran = script.ran.lock().unwrap();
    assert_eq!(ran.last().unwrap().1, "restore counter/6.12->6.1", "no guest op after the interrupt: {ran:?}");
    assert_eq!(verdict(&out, "counter/5.10->6.1").0, Status::Pass, "judged before the interrupt");
    // A cell judged after the interrupt is cut short: never a result, never a FAIL.
    assert_eq!(out.cut_short.iter().collect::<Vec<_>>(), ["counter/6.12->6.1"]);
    let (s, why) = verdict(&out, "counter/6.12->6.1");
    assert_eq!(s, Status::Error);
    assert!(why.contains("crtest was interrupted"), "{why}");
}

mod linked {
    use super::*;
    use crate::config::mode::Mode;
    use crate::run::fake::cell_in;

    fn one(mode: Mode, script: Script) -> (crate::run::RunOutput, std::sync::Arc<Script>) {
        run_fake(vec![cell_in(mode, "counter", "6.1", "6.12"), cell_in(mode, "counter", "6.1", "6.1")], script, 1)
    }

    #[test]
    fn a_page_server_cell_links_the_guests_and_joins_the_pages() {
        let (out, script) = one(Mode::PageServer, Script::default());
        assert_eq!(verdict(&out, "counter+page-server/6.1->6.12").0, Status::Pass);
        let ran = script.ran.lock().unwrap();
        // The last time: the cross cell's group runs after its control's.
        let at = |vm: &str, label: &str| ran.iter().rposition(|(v, l)| v == vm && l.starts_with(label)).unwrap();
        // Linked, the page server up on the target before the source dumps to it, then collected.
        assert!(at(SRC, "link with 6.12~restore") < at("6.12~restore", "page server at 10.77.0.2:"));
        assert!(at("6.12~restore", "page server at") < at(SRC, "dump counter after step 3 to the page server"));
        assert!(at(SRC, "dump counter after step 3 to the page server") < at("6.12~restore", "collect"));
        // The control crosses guests of one kind with a link of its own.
        assert!(ran.iter().any(|(v, l)| v == SRC && l == "link with 6.1~restore"), "{ran:?}");
    }

    #[test]
    fn a_page_server_that_fails_is_the_engines_failure() {
        let script = exits("6.12~restore", OpKind::PageServer, rc::DUMP_FAILED);
        let (out, _) = one(Mode::PageServer, script);
        let (s, why) = verdict(&out, "counter+page-server/6.1->6.12");
        assert_eq!(s, Status::Fail);
        assert!(why.starts_with("dump: criu page-server failed without an Error line"), "{why}");
    }

    #[test]
    fn a_lazy_cell_restores_with_lazy_pages_and_waits_for_the_dump() {
        let (out, script) = one(Mode::Lazy, Script::default());
        assert_eq!(verdict(&out, "counter+lazy/6.1->6.12").0, Status::Pass);
        let ran = script.ran.lock().unwrap();
        // The last time: the cross cell's group runs after its control's.
        let at = |vm: &str, label: &str| ran.iter().rposition(|(v, l)| v == vm && l.starts_with(label)).unwrap();
        assert!(
            at(SRC, "lazy dump counter")
                < at("6.12~restore", "restore counter+lazy/6.1->6.12 with lazy pages from 10.77.0.1:")
        );
        assert!(at("6.12~restore", "finish counter+lazy/6.1->6.12") < at(SRC, "wait for the lazy dump"));
        // A lazy dump that ends badly fails the cell with the engine's line.
        let (out, _) = one(Mode::Lazy, exits(SRC, OpKind::LazyDone, rc::DUMP_FAILED));
        let (s, why) = verdict(&out, "counter+lazy/6.1->6.12");
        assert_eq!(s, Status::ControlFail, "its control's dump fails the same way: {why}");
        assert!(why.contains("Error (criu/uffd.c:3): fake lazy transfer error"), "{why}");
    }

    #[test]
    fn a_link_that_cannot_be_made_is_an_error() {
        let (out, _) = one(Mode::Lazy, Script { down: ["6.12~restore".to_string()].into(), ..Script::default() });
        let (s, why) = verdict(&out, "counter+lazy/6.1->6.12");
        assert_eq!(s, Status::Error);
        assert!(why.contains("linking 6.1 and 6.12~restore"), "{why}");
    }
}
