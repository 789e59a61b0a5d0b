//! Makes sure no QEMU outlives crtest: every child VM is registered here and
//! killed on Ctrl-C, SIGTERM or a panic. (A `Vm` also kills its own QEMU on
//! drop, and QEMU runs under `setpriv --pdeathsig KILL` for a SIGKILL of us.)

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Scratch and staging directories removed when a run is interrupted.
static SCRATCH: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();

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
            kill_all();
            for dir in SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("crtest: interrupted; all VMs killed");
            std::process::exit(130);
        });
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_all();
            default(info);
        }));
    });
}
