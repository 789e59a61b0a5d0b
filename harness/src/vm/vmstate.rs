//! Saved guests: a guest kind boots from its kernel once, its state is saved
//! (QEMU migration to a file) at the point where the init waits for the
//! host's go line, and later guests of that kind start from the saved state
//! (`-incoming`) instead of booting. Under TCG that is about a fifth of a
//! cold boot.
//!
//! A state is only valid for the exact QEMU, kernel, guest image and machine
//! that made it, so its file name carries a key over all of them; anything
//! wrong with a state (missing, unreadable, rejected by QEMU, a guest that
//! never gets ready) means a cold boot, with a notice, and a new state.

use crate::util::fsutil;
use crate::vm::qemu::{qemu_args, Accel, BootSpec, Vm, VmConfig, VmError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Version of the save protocol (the init's pause point and go line, where
/// the state is taken). Bump it when either changes.
pub const FORMAT: u32 = 1;
/// A resumed guest is ready within a second or two; a broken state should
/// not cost a whole boot timeout before the cold boot.
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);
/// States unused this long are deleted when a new one is saved (each is
/// 100-200 MB, and every new kernel, image or VM setting makes a new one).
const UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Temp files of saves this old were left by an interrupted run.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Everything that shapes a saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInputs {
    pub format: u32,
    /// `qemu-system-x86_64 --version`, first line.
    pub qemu: String,
    /// The boot image: path, size and modification time.
    pub kernel: String,
    /// The guest image: path (carries its content hash) and size.
    pub initrd: String,
    pub memory_mb: u32,
    pub cpu: String,
    pub accel: Accel,
    /// The QEMU command line with the per-guest paths left out.
    pub args: String,
}

impl KeyInputs {
    pub fn of(spec: &BootSpec, cfg: &VmConfig) -> KeyInputs {
        let canonical = BootSpec { share: PathBuf::from("/share"), ..spec.clone() };
        KeyInputs {
            format: FORMAT,
            qemu: qemu_version().to_string(),
            kernel: file_id(&spec.kernel_image),
            initrd: file_id(&spec.initrd),
            memory_mb: cfg.memory_mb,
            cpu: cfg.cpu.clone(),
            accel: cfg.accel,
            args: qemu_args(&canonical, cfg).join(" "),
        }
    }

    /// A short hex digest of all inputs.
    pub fn key(&self) -> String {
        let text = format!(
            "format={}\nqemu={}\nkernel={}\ninitrd={}\nmemory={}\ncpu={}\naccel={:?}\nargs={}\n",
            self.format, self.qemu, self.kernel, self.initrd, self.memory_mb, self.cpu, self.accel, self.args
        );
        fsutil::sha256_hex(text.as_bytes())[..24].to_string()
    }
}

/// Where saved states live: `CACHE/states`.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn in_cache(cache: &Path) -> Store {
        Store { dir: cache.join("states") }
    }

    /// The state file for this guest kind.
    pub fn path(&self, spec: &BootSpec, cfg: &VmConfig) -> PathBuf {
        self.dir.join(format!("{}-{}.state", spec.kernel_id, KeyInputs::of(spec, cfg).key()))
    }
}

/// Starts a guest and waits until it is ready: from the saved state when
/// `store` has one, else by booting (saving the state for next time).
/// `store` None boots without saving. `notice` hears every fallback.
pub fn start(spec: &BootSpec, cfg: &VmConfig, store: Option<&Store>, notice: &dyn Fn(String)) -> Result<Vm, VmError> {
    let Some(store) = store else { return Vm::boot(spec, cfg) };
    let state = store.path(spec, cfg);
    if unresumable(&state).is_file() {
        return Vm::boot(spec, cfg);
    }
    if state.is_file() {
        match resume(spec, cfg, &state) {
            Ok(vm) => {
                // Its age is time since last use (see `prune`).
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&state)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Ok(vm);
            }
            Err(e) => {
                notice(format!(
                    "kernel {}: resuming from {} failed, deleting it and booting: {}",
                    spec.kernel_id,
                    state.display(),
                    first_line(&e.to_string())
                ));
                let _ = std::fs::remove_file(&state);
            }
        }
    } else {
        notice(format!("kernel {}: no saved guest state yet: booting and saving one", spec.kernel_id));
    }
    boot_and_save(spec, cfg, &state, notice)
}

fn resume(spec: &BootSpec, cfg: &VmConfig, state: &Path) -> Result<Vm, VmError> {
    let timeout = RESUME_TIMEOUT.min(cfg.boot_timeout);
    let mut vm = Vm::resume(spec, cfg, state, timeout)?;
    vm.go(timeout)?;
    Ok(vm)
}

/// Boots from the kernel, saves the state at the go point (through a
/// temporary file and a rename, so a half-written state is never used) and
/// lets the guest go on. A failed save costs a notice, not the guest.
fn boot_and_save(spec: &BootSpec, cfg: &VmConfig, state: &Path, notice: &dyn Fn(String)) -> Result<Vm, VmError> {
    let mut vm = Vm::launch(spec, cfg)?;
    if !vm.reseeds_on_resume {
        // Guests resumed from one state would share their random numbers.
        notice(format!(
            "kernel {}: no vmgenid driver to reseed the RNG of resumed guests: always booting",
            spec.kernel_id
        ));
        let _ = std::fs::create_dir_all(state.parent().unwrap_or(Path::new(".")));
        let _ = std::fs::write(unresumable(state), b"no vmgenid\n");
        vm.go(cfg.boot_timeout)?;
        return Ok(vm);
    }
    // Unique per process and guest: two runs (or guests) may save one state at once.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tmp = state.with_extension(format!("tmp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let saved = std::fs::create_dir_all(state.parent().unwrap_or(Path::new(".")))
        .map_err(|e| format!("creating the states dir: {e}"))
        .and_then(|_| vm.save_state(&tmp).map_err(|e| first_line(&e.to_string()).to_string()))
        .and_then(|_| std::fs::rename(&tmp, state).map_err(|e| format!("renaming {}: {e}", tmp.display())));
    match saved {
        Ok(()) => prune(state.parent().unwrap_or(Path::new("."))),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            notice(format!("kernel {}: could not save the guest state: {e}", spec.kernel_id));
        }
    }
    vm.go(cfg.boot_timeout)?;
    Ok(vm)
}

/// Marks a guest kind whose states must not be used.
fn unresumable(state: &Path) -> PathBuf {
    state.with_extension("unresumable")
}

/// Deletes states unused for `UNUSED_FOR` and abandoned temp files.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        let limit = match path.extension().and_then(|e| e.to_str()) {
            Some("state") | Some("unresumable") => UNUSED_FOR,
            Some(e) if e.starts_with("tmp-") => ABANDONED_AFTER,
            _ => continue,
        };
        if age.is_some_and(|a| a > limit) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Identifies a file cheaply (the boot image is tens of MB): path, size and
/// modification time.
fn file_id(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}:{size}:{mtime}", path.display())
}

/// The first line of `qemu-system-x86_64 --version`, asked once.
pub fn qemu_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default()
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            format: FORMAT,
            qemu: "QEMU emulator version 7.2.22".into(),
            kernel: "/k/vmlinux.pvh:66000000:1".into(),
            initrd: "/g/6.1-0123456789abcdef.cpio:18000000".into(),
            memory_mb: 2048,
            cpu: "max".into(),
            accel: Accel::Tcg,
            args: "-m 2048".into(),
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = inputs().key();
        let changes: [fn(&mut KeyInputs); 8] = [
            |k| k.format += 1,
            |k| k.qemu.push_str(" (other build)"),
            |k| k.kernel = "/k/vmlinux.pvh:66000000:2".into(),
            |k| k.initrd = "/g/6.1-fedcba9876543210.cpio:18000000".into(),
            |k| k.memory_mb = 1024,
            |k| k.cpu = "qemu64".into(),
            |k| k.accel = Accel::Kvm,
            |k| k.args.push_str(" -smp 2"),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut k = inputs();
            change(&mut k);
            assert_ne!(k.key(), base, "change {i} kept the key");
        }
        assert_eq!(inputs().key(), base, "the key is stable");
    }

    #[test]
    fn prune_deletes_only_old_states_and_abandoned_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        let ancient = std::time::SystemTime::now() - UNUSED_FOR - Duration::from_secs(60);
        for (name, mtime) in [("a.state", old), ("b.state", ancient), ("c.tmp-1-0", old), ("notes.txt", ancient)] {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.set_modified(mtime).unwrap();
        }
        std::fs::File::create(dir.path().join("d.tmp-2-0")).unwrap();
        prune(dir.path());
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["a.state", "d.tmp-2-0", "notes.txt"]);
    }

    #[test]
    fn state_path_ignores_the_guests_own_dirs() {
        let store = Store { dir: "/cache/states".into() };
        let cfg = VmConfig { accel: Accel::Tcg, memory_mb: 512, cpu: "max".into(), boot_timeout: RESUME_TIMEOUT };
        let spec = |share: &str| BootSpec {
            kernel_id: "6.1".into(),
            kernel_image: "/nonexistent/vmlinux".into(),
            initrd: "/nonexistent/initrd".into(),
            share: share.into(),
        };
        let (a, b) = (store.path(&spec("/tmp/a"), &cfg), store.path(&spec("/tmp/b"), &cfg));
        assert_eq!(a, b);
        assert!(
            a.to_string_lossy().starts_with("/cache/states/6.1-") && a.extension().unwrap() == "state",
            "{}",
            a.display()
        );
        let bigger = VmConfig { memory_mb: 1024, ..cfg.clone() };
        assert_ne!(store.path(&spec("/tmp/a"), &bigger), a);
    }
}
