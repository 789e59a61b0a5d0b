//! Catalogs, a library and matrices for the tests of the matrix and of
//! what is planned from it (`plan`'s tests use these too).

use super::Matrix;
use crate::config::workload::Library;
use crate::config::yaml::ConfigError;
use crate::kernel::Catalog;
use std::path::Path;

pub fn fixtures() -> (tempfile::TempDir, Catalog, Library) {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog.yaml");
    std::fs::write(
        &cat,
        "kernels:\n  - id: \"5.10\"\n    suite: bullseye\n    packages: [a]\n  - id: \"6.1\"\n    suite: bookworm\n    packages: [b]\n  - id: \"6.12\"\n    suite: bookworm-security\n    packages: [c]\n",
    )
    .unwrap();
    let wl = dir.path().join("wl");
    std::fs::create_dir(&wl).unwrap();
    std::fs::write(wl.join("workloads.yaml"), "- name: counter\n  summary: s\n  steps: 10\n  dump_after: 3\n- name: pipe\n  summary: s\n  steps: 10\n  dump_after: 3\n  min_kernel: \"6.0\"\n").unwrap();
    std::fs::write(wl.join("counter.c"), "").unwrap();
    std::fs::write(wl.join("pipe.c"), "").unwrap();
    let catalog = Catalog::load(&cat).unwrap();
    let library = Library::load(&wl).unwrap();
    (dir, catalog, library)
}

/// Formats criu-4.1 and criu-4.2 (engines of those names), converters
/// in one direction only.
pub fn formats(dir: &Path) -> crate::config::formats::Formats {
    let p = dir.join("formats.yaml");
    std::fs::write(
        &p,
        "versions: [criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n",
    )
    .unwrap();
    crate::config::formats::Formats::load(&p, &crate::config::formats::tests::engines_of(&["4.1", "4.2"])).unwrap()
}

pub fn matrix(text: &str) -> Result<Matrix, ConfigError> {
    let (dir, catalog, library) = fixtures();
    let p = dir.path().join("matrix.yaml");
    std::fs::write(&p, text).unwrap();
    Matrix::load(&p, &catalog, &library, &formats(dir.path()))
}
