//! A fake guest for unit tests of the run: it "runs" each operation by
//! leaving in the share what the real scripts leave there, and ends it with
//! the exit the test scripted, so every stage outcome and the verdict it
//! gives are tested without QEMU.

use super::guest::{FaultError, Guest, Launcher, LinkHandle};
use super::{run, RunOutput, Setup};
use crate::config::matrix::Timeouts;
use crate::config::workload::{Library, Workload};
use crate::engine::{rc, GuestOp, OpKind};
use crate::event::{Event, Reporter};
use crate::plan::{cell_id, Cell, GuestKind, Plan, Route};
use crate::util::error::io_at;
use crate::verdict::{Stage, Status};
use crate::vm::qemu::{CmdResult, Start};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRANSCRIPT: &str = "step 1\nstep 2\nstep 3\nstep 4\ndone\n";
const SNAP: &str = "200001 fd 0 /dev/null\n200001 map 00400000-00401000 r-xp 00000000 /opt/crtest/bin/counter\n";
const MEM: &str = "1 00400000-00401000 rw-p 00000000 [heap]\tab\n";

/// What the fake guests do: everything goes well unless scripted otherwise.
#[derive(Default)]
pub struct Script {
    /// Exit codes by (VM name, op kind).
    pub exits: BTreeMap<(String, OpKind), i32>,
    /// VMs that do not start.
    pub down: BTreeSet<String>,
    /// (VM, op kind) whose run is a VM-level fault.
    pub faults: BTreeSet<(String, OpKind)>,
    /// The restored program's transcript, when not the reference's.
    pub restored_transcript: Option<String>,
    /// The restore's state snapshot, when not the dump's.
    pub restored_snap: Option<String>,
    /// Features the engine lacks.
    pub missing_features: BTreeSet<String>,
    /// Interrupt the run once an op with this label has run.
    pub interrupt_after: Option<String>,
    /// The fake run's Ctrl-C, set once `interrupt_after` has run.
    pub interrupted: Arc<AtomicBool>,
    /// Every op run: (VM, label).
    pub ran: Mutex<Vec<(String, String)>>,
}

pub struct FakeLauncher(pub Arc<Script>);

struct FakeGuest {
    name: String,
    share: PathBuf,
    script: Arc<Script>,
}

impl Launcher for FakeLauncher {
    fn launch(
        &self,
        name: &str,
        _: &GuestKind,
        share: &Path,
        _: &dyn Fn(String),
    ) -> Result<Box<dyn Guest>, FaultError> {
        if self.0.down.contains(name) {
            return Err(FaultError::Scripted(format!("boot of {name} timed out")));
        }
        Ok(Box::new(FakeGuest { name: name.into(), share: share.into(), script: self.0.clone() }))
    }
    fn release_of(&self, kind: &GuestKind) -> String {
        format!("{}-fake", kind.kernel)
    }
}

impl Guest for FakeGuest {
    fn release(&self) -> &str {
        "fake"
    }
    fn boot_secs(&self) -> f64 {
        0.5
    }
    fn start(&self) -> Start {
        Start::Resumed
    }
    fn run(&mut self, op: &GuestOp, _: Duration) -> Result<CmdResult, FaultError> {
        let s = &self.script;
        s.ran.lock().unwrap().push((self.name.clone(), op.label.clone()));
        if s.interrupt_after.as_deref() == Some(op.label.as_str()) {
            s.interrupted.store(true, Ordering::SeqCst);
        }
        if s.faults.contains(&(self.name.clone(), op.kind)) {
            return Err(FaultError::Scripted("QEMU exited".into()));
        }
        let code = s.exits.get(&(self.name.clone(), op.kind)).copied().unwrap_or(rc::OK);
        let out = op.out.as_ref().map(|o| self.share.join("out").join(&o.id));
        if let Some(out) = &out {
            let leave = || std::fs::create_dir_all(out).and_then(|_| self.leave(op.kind, code, out));
            leave().map_err(io_at("writing into", out))?;
        }
        let output = match op.kind {
            OpKind::Features => {
                let features = ["uffd-noncoop", "mem_dirty_track"];
                features.iter().map(|f| format!("{f} {}\n", u8::from(s.missing_features.contains(*f)))).collect()
            }
            _ => format!("fake output of {}", op.label),
        };
        Ok(CmdResult { rc: code, output, secs: 0.01 })
    }
    fn shutdown(self: Box<Self>) -> String {
        format!("console of {}", self.name)
    }
    fn link(&mut self, other: &mut dyn Guest) -> Result<Box<dyn LinkHandle>, FaultError> {
        let other = other.as_any().downcast_mut::<FakeGuest>().expect("fake guests link with fakes");
        self.script.ran.lock().unwrap().push((self.name.clone(), format!("link with {}", other.name)));
        Ok(Box::new(FakeLink))
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

struct FakeLink;
impl LinkHandle for FakeLink {
    fn close(self: Box<Self>) -> Result<(), FaultError> {
        Ok(())
    }
}

impl FakeGuest {
    /// Leaves in `out` what the real script of `kind` leaves on exit `code`.
    fn leave(&self, kind: OpKind, code: i32, out: &Path) -> std::io::Result<()> {
        let write = |name: &str, text: &str| std::fs::write(out.join(name), text);
        let s = &self.script;
        match kind {
            OpKind::StartReference | OpKind::StartDump => write("pid", "200001\n"),
            OpKind::WaitReference => write("transcript", TRANSCRIPT),
            OpKind::Dump => {
                let failed = code == rc::DUMP_FAILED;
                write("dump.log", if failed { "(00.1) Error (criu/mem.c:9): fake dump error\n" } else { "ok\n" })?;
                write("before.snap", SNAP)?;
                write("before.mem", MEM)?;
                write("files.tar", "tar")?;
                std::fs::create_dir_all(out.join("img"))?;
                write("img/inventory.img", "images")
            }
            OpKind::Restore => {
                let failed = code == rc::RESTORE_FAILED;
                write(
                    "restore.log",
                    if failed { "(00.2) Error (criu/files.c:7): fake restore error\n" } else { "ok\n" },
                )?;
                write("after.snap", s.restored_snap.as_deref().unwrap_or(SNAP))?;
                write("after.mem", MEM)
            }
            OpKind::Finish => write("transcript", s.restored_transcript.as_deref().unwrap_or(TRANSCRIPT)),
            OpKind::Iterate => {
                for (name, text) in
                    [("before.snap", SNAP), ("after.snap", SNAP), ("before.mem", MEM), ("after.mem", MEM)]
                {
                    write(name, text)?;
                }
                write("dump.log", "(00.3) Error (criu/cr-dump.c:1): fake iteration error\n")
            }
            OpKind::Features | OpKind::PageServer => write("page-server.log", "(00.1) page server up\n"),
            OpKind::CollectPages => {
                std::fs::create_dir_all(out.join("ps"))?;
                write("ps/pagemap-200001.img", "pagemap")?;
                write("ps/pages-1.img", "pages")
            }
            OpKind::LazyDone => write("dump.log", "(00.4) Error (criu/uffd.c:3): fake lazy transfer error\n"),
        }
    }
}

struct Quiet;
impl Reporter for Quiet {
    fn event(&self, _: &Event) {}
}

fn workload(name: &str, features: &[&str]) -> Workload {
    let yaml = format!("name: {name}\nsummary: s\nsteps: 8\ndump_after: 3\nfeatures: {features:?}\n");
    serde_yaml_ng::from_str(&yaml).unwrap()
}

/// A cell `w+mode/src->dst`, with its control.
pub fn cell_in(mode: crate::config::mode::Mode, w: &str, src: &str, dst: &str) -> Cell {
    let label = crate::plan::label(w, mode);
    let mut c = cell(w, src, dst);
    c.mode = mode;
    c.id = cell_id(&label, src, dst);
    c.control = (src != dst).then(|| cell_id(&label, src, src));
    c
}

/// A cell `w/src->dst` of the fake matrix, with its control when it crosses kinds.
pub fn cell(w: &str, src: &str, dst: &str) -> Cell {
    let (s, d) = (GuestKind::parse(src), GuestKind::parse(dst));
    Cell {
        id: cell_id(w, src, dst),
        workload: w.into(),
        mode: Default::default(),
        src: s.kernel,
        dst: d.kernel,
        src_engine: s.engine,
        dst_engine: d.engine,
        skip: None,
        control: (src != dst).then(|| cell_id(w, src, src)),
        control_only: false,
        route: Some(Route {
            dump_engine: "host".into(),
            restore_engine: "host".into(),
            from_format: "f".into(),
            to_format: "f".into(),
            chain: vec![],
            pid_slot: 0,
            dump_after: Some(3),
        }),
    }
}

/// Runs `cells` on fake guests behaving as `script` says.
pub fn run_fake(cells: Vec<Cell>, script: Script, iters: u32) -> (RunOutput, Arc<Script>) {
    let script = Arc::new(script);
    let setup = Setup {
        library: Library {
            dir: PathBuf::new(),
            workloads: vec![workload("counter", &[]), workload("tcp", &[]), workload("lazy", &["uffd-noncoop"])],
        },
        engines: BTreeMap::new(),
        timeouts: Timeouts { boot: Duration::from_secs(5), operation: Duration::from_secs(10) },
        step_ms: 10,
        converter_command: None,
        crits: BTreeMap::new(),
        iters,
        restore_in_dumping_guest: false,
        interrupted: {
            let flag = script.interrupted.clone();
            Box::new(move || flag.load(Ordering::SeqCst))
        },
    };
    let work = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    let plan = Plan { cells };
    let out = run(&plan, &setup, &FakeLauncher(script.clone()), 2, work.path(), artifacts.path(), &Quiet).unwrap();
    (out, script)
}

/// Status and reason of cell `id`.
pub fn verdict(out: &RunOutput, id: &str) -> (Status, String) {
    let c = out.cells.iter().find(|c| c.cell.id == id).unwrap_or_else(|| panic!("no cell {id}"));
    (c.status, c.reason.clone().unwrap_or_default())
}

/// The stages cell `id` went through.
pub fn stages(out: &RunOutput, id: &str) -> Vec<Stage> {
    out.cells.iter().find(|c| c.cell.id == id).unwrap().stages.iter().map(|s| s.stage).collect()
}
