//! Makes sure no QEMU outlives crtest: every child VM is registered here and
//! killed on Ctrl-C, SIGTERM or a panic. (A `Vm` also kills its own QEMU on
//! drop, and QEMU runs under `setpriv --pdeathsig KILL` for a SIGKILL of us.)

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Scratch and staging directories removed when a run is interrupted.
static SCRATCH: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();
/// Set first thing on Ctrl-C/SIGTERM: the run's threads go on until the
/// process exits, and must not recreate the scratch being removed or commit
/// results.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Held while an interrupted run writes the results of the cells judged
/// before the interrupt; the handler waits for it before removing dirs.
static RESULTS: Mutex<()> = Mutex::new(());
static FINISHING: AtomicBool = AtomicBool::new(false);

/// How long an interrupted run gets to unwind and clean up by itself.
const UNWIND_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// Exit status of an interrupted crtest (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Lets an interrupted run write its finished cells' results: while the guard
/// lives, staging may be written and committed, and the signal handler waits
/// before it removes the run's directories.
pub fn finishing() -> std::sync::MutexGuard<'static, ()> {
    let guard = RESULTS.lock().unwrap_or_else(|e| e.into_inner());
    FINISHING.store(true, Ordering::SeqCst);
    guard
}

/// Whether results may be written now: always, unless interrupted outside
/// [`finishing`].
pub fn may_write() -> bool {
    !interrupted() || FINISHING.load(Ordering::SeqCst)
}

pub fn register(pid: i32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
}

pub fn unregister(pid: i32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
}

/// Marks `dir` for removal if the run is interrupted.
pub fn scratch(dir: &Path) {
    SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.to_path_buf());
}

pub fn unscratch(dir: &Path) {
    SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).remove(dir);
}

/// SIGKILLs every registered child.
pub fn kill_all() {
    let pids: Vec<i32> = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
    for pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Installs the signal handler and panic hook (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            kill_all();
            eprintln!("crtest: interrupted; all VMs killed");
            // The run now fails fast and its scratch and staging dirs go with
            // their owners; if it is stuck elsewhere (a download), remove
            // them here and leave.
            std::thread::sleep(UNWIND_GRACE);
            let _writing = RESULTS.lock().unwrap_or_else(|e| e.into_inner());
            for dir in SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(EXIT_INTERRUPTED);
        });
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_all();
            default(info);
        }));
    });
}
