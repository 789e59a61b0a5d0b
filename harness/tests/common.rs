//! Helpers for tests that run the real `crtest` binary: real QEMU, real
//! Debian kernels, real CRIU. They share the user's kernel cache.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Real VMs are heavy on a 2-core machine: one test at a time per binary.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A project root for one test: the repo's kernels and workloads, plus a matrix.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new(matrix: &str) -> Root {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["kernels", "workloads", "converters"] {
            copy_tree(&repo().join(sub), &dir.path().join(sub));
        }
        std::fs::write(dir.path().join("matrix.yaml"), matrix).unwrap();
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Appends an entry to the workload library.
    pub fn add_workload(&self, yaml: &str) {
        let p = self.path().join("workloads/workloads.yaml");
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(yaml);
        std::fs::write(p, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crtest"));
        cmd.args(args).env("CRTEST_ROOT", self.path()).current_dir(self.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        eprintln!(
            "--- crtest {args:?} exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn results(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.out().join("results.json")).unwrap()).unwrap()
    }
}

/// The cell with this id in a results document.
pub fn cell<'a>(results: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    results["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no cell {id} in {results}"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// PIDs of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// What it takes to start guests of one kernel by hand, through the
/// library: the kernel and its guest image prepared (fetched and built into
/// the user's cache), under TCG with 1 GiB guests.
pub struct GuestParts {
    pub kernel: String,
    pub boot_image: PathBuf,
    pub initrd: PathBuf,
    pub cfg: crtest::vm::qemu::VmConfig,
}

impl GuestParts {
    pub fn new(kernel: &str) -> GuestParts {
        use crtest::config::matrix::{AccelChoice, Matrix};
        use crtest::vm::qemu::Accel;
        let project = crtest::prepare::Project::load().unwrap();
        let mut matrix =
            Matrix::for_pairs(&project.library, &project.formats, "counter", vec![(kernel.into(), kernel.into())]);
        matrix.memory_mb = 1024;
        let plan = crtest::plan::Plan::new(&matrix, &project.catalog, &project.library, &Default::default());
        let quiet = crtest::report::progress::Progress::new(false);
        let ready = crtest::session::prepare(&project, &matrix, &plan, Some(AccelChoice::Force(Accel::Tcg)), &quiet)
            .expect("the kernel and its guest image");
        let images = crtest::prepare::boot_images(&project.catalog, &ready.kernels, true, &quiet).unwrap();
        GuestParts {
            kernel: kernel.into(),
            boot_image: images[kernel].clone(),
            initrd: ready.images[kernel].initrd.clone(),
            cfg: crtest::session::vm_config(&matrix, Accel::Tcg),
        }
    }

    /// The boot spec of one guest sharing `share` with the host.
    pub fn spec(&self, share: &Path) -> crtest::vm::qemu::BootSpec {
        crtest::vm::qemu::BootSpec {
            kernel_id: self.kernel.clone(),
            kernel_image: self.boot_image.clone(),
            initrd: self.initrd.clone(),
            share: share.to_path_buf(),
        }
    }
}
