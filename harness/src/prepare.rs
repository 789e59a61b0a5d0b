//! Everything before the first cell: project files, kernels, workload
//! binaries, the engine, guest images and the accelerator choice.

use crate::config::matrix::AccelChoice;
use crate::config::workload::Library;
use crate::engine::Engine;
use crate::event::{Event, Reporter};
use crate::guest::image::{self, GuestImage};
use crate::kernel::{fetch, Catalog, Kernel};
use crate::plan::Plan;
use crate::util::fsutil;
use crate::vm::qemu::{Accel, BootSpec, Vm, VmConfig};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The project directory holding `kernels/`, `workloads/` and `matrix.yaml`:
/// `CRTEST_ROOT`, else the nearest ancestor of the working directory with
/// `workloads/workloads.yaml`, else the source tree crtest was built from.
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os("CRTEST_ROOT") {
        return PathBuf::from(root);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| d.join("workloads/workloads.yaml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf())
}

pub struct Project {
    pub root: PathBuf,
    pub catalog: Catalog,
    pub library: Library,
    pub engines: Vec<crate::engine::EngineSpec>,
    /// `converters/formats.yaml`: format versions and converters.
    pub formats: crate::config::formats::Formats,
    /// Explained incompatibilities (kernels/incompatibilities.yaml).
    pub known: crate::verdict::known::Known,
}

impl Project {
    pub fn load() -> Result<Self> {
        let root = project_root();
        let catalog = Catalog::load(&root.join("kernels/catalog.yaml"))?;
        let library = Library::load(&root.join("workloads"))?;
        let engines = crate::engine::load_catalog(&root.join("kernels/engines.yaml"))?;
        let formats = crate::config::formats::Formats::load(&root.join("converters/formats.yaml"), &engines)?;
        let known = crate::verdict::known::Known::load(&root.join(crate::verdict::known::FILE))?;
        Ok(Project { root, catalog, library, engines, formats, known })
    }

    /// Makes a CRIU binary given by path (`--engine ./criu/criu`) an engine
    /// of this project and returns its id (see `engine::local_spec`).
    pub fn add_engine_path(&mut self, path: &Path) -> Result<String, crate::engine::LocalEngineError> {
        let spec = crate::engine::local_spec(path, &self.engines)?;
        let id = spec.id.clone();
        self.formats.engine_formats.insert(id.clone(), spec.format.clone());
        if !self.engines.iter().any(|e| e.id == id) {
            self.engines.push(spec);
        }
        Ok(id)
    }
}

/// Fetches every kernel `ids` names (no-op when cached).
pub fn kernels(
    project: &Project,
    ids: &[String],
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, Kernel>> {
    let log = |m: &str| reporter.event(&Event::Notice(m.to_string()));
    ids.iter()
        .map(|id| {
            let spec = project
                .catalog
                .get(id)
                .with_context(|| format!("kernel `{id}` is not in {}", project.catalog.path.display()))?;
            let k = fetch::fetch(cache, spec, &log).with_context(|| format!("fetching kernel {id}"))?;
            Ok((id.clone(), k))
        })
        .collect()
}

/// Builds the guest image of every kernel with `engine` and the plan's workloads.
pub fn images(
    library: &Library,
    plan: &Plan,
    kernels: &BTreeMap<String, Kernel>,
    engines: &BTreeMap<String, Engine>,
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, GuestImage>> {
    let names: Vec<String> =
        plan.runnable().map(|c| c.workload.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let binaries = library.build(&names, cache)?;
    let mut out = BTreeMap::new();
    for (id, kernel) in kernels {
        let image = image::build(kernel, &engines[id], &binaries, cache)
            .with_context(|| format!("building the guest image for {id}"))?;
        for note in &image.notes {
            reporter.event(&Event::Notice(note.clone()));
        }
        out.insert(id.clone(), image);
    }
    Ok(out)
}

/// The engine of every guest kind (its own, else the kernel's in the matrix).
pub fn engines(
    project: &Project,
    matrix: &crate::config::matrix::Matrix,
    kinds: &[String],
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, Engine>> {
    let log = |m: &str| reporter.event(&Event::Notice(m.to_string()));
    let mut built: BTreeMap<String, Engine> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for k in kinds {
        let id = crate::plan::engine_of(matrix, k);
        if !built.contains_key(id) {
            built.insert(id.to_string(), crate::engine::resolve(id, &project.engines, cache, &log)?);
        }
        out.insert(k.clone(), built[id].clone());
    }
    Ok(out)
}

/// The crit of every format a conversion chain of the plan goes through
/// (fetched with the engine's tools on first use).
pub fn crits(
    project: &Project,
    plan: &Plan,
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, crate::convert::crit::Crit>> {
    let log = |m: &str| reporter.event(&Event::Notice(m.to_string()));
    let needed = plan.runnable().flat_map(|c| c.chain().to_vec()).flat_map(|s| [s.from, s.to]);
    Ok(crate::convert::crit::for_formats(needed, &project.engines, cache, &log)?)
}

/// The image QEMU boots per kernel: the PVH-bootable vmlinux cut out of a
/// Debian vmlinuz (cached), else the bzImage. Local kernels boot as given.
pub fn boot_images(
    catalog: &Catalog,
    kernels: &BTreeMap<String, Kernel>,
    pvh: bool,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for (id, k) in kernels {
        let packaged = catalog
            .get(crate::plan::kernel_of(id))
            .is_some_and(|s| matches!(s.source, crate::kernel::Source::Debian { .. }));
        let notice = |why: String| {
            reporter.event(&Event::Notice(format!("kernel {id}: {why}: booting its bzImage")));
            k.vmlinuz.clone()
        };
        let image = match (pvh && packaged).then(|| crate::kernel::pvh::vmlinux(&k.vmlinuz)) {
            Some(Ok(Some(vmlinux))) => vmlinux,
            Some(Ok(None)) => notice("no PVH entry point".into()),
            // PVH only saves boot time: any trouble cutting the ELF out is a notice, never the end of the run.
            Some(Err(e)) => notice(format!("extracting the PVH kernel failed ({})", crate::util::error::chain(&e))),
            None => k.vmlinuz.clone(),
        };
        out.insert(id.clone(), image);
    }
    Ok(out)
}

/// Picks the accelerator. `auto` uses KVM only after a probe boot succeeds
/// (on some hosts /dev/kvm opens but nested guests die), remembering the
/// answer per host kernel and QEMU version.
pub fn accel(
    choice: AccelChoice,
    probe: Option<(&Kernel, &GuestImage)>,
    cache: &Path,
    reporter: &dyn Reporter,
) -> Accel {
    let AccelChoice::Auto = choice else {
        let AccelChoice::Force(a) = choice else { unreachable!() };
        return a;
    };
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        reporter.event(&Event::Notice("no usable /dev/kvm: guests run under TCG (software emulation)".into()));
        return Accel::Tcg;
    }
    let Some((kernel, image)) = probe else { return Accel::Tcg };
    let key = probe_key();
    let memo = cache.join("accel-probe").join(fsutil::sha256_hex(key.as_bytes()));
    let ok = match std::fs::read_to_string(&memo) {
        Ok(text) => text.trim() == "kvm",
        Err(_) => {
            let ok = probe_kvm(kernel, image);
            let _ = fsutil::write_atomic(&memo, if ok { b"kvm\n" } else { b"tcg\n" });
            ok
        }
    };
    if ok {
        Accel::Kvm
    } else {
        reporter.event(&Event::Notice(
            "KVM probe boot failed on this host: guests run under TCG (software emulation)".into(),
        ));
        Accel::Tcg
    }
}

fn probe_key() -> String {
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!("{}|{}", uname.trim(), qemu.lines().next().unwrap_or(""))
}

fn probe_kvm(kernel: &Kernel, image: &GuestImage) -> bool {
    let Ok(share) = tempfile::tempdir() else { return false };
    let spec = BootSpec {
        kernel_id: kernel.id.clone(),
        kernel_image: kernel.vmlinuz.clone(),
        initrd: image.initrd.clone(),
        share: share.path().to_path_buf(),
    };
    let cfg = VmConfig { accel: Accel::Kvm, memory_mb: 512, cpu: "max".into(), boot_timeout: Duration::from_secs(30) };
    match Vm::boot(&spec, &cfg) {
        Ok(vm) => {
            vm.shutdown();
            true
        }
        Err(_) => false,
    }
}
