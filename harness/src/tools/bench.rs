//! `crtest bench`: how long the parts of a cell take on this machine, over
//! several runs, reported as min / median / max (machines are noisy; the
//! median and ratios are what to compare).

use crate::guest::image::GuestImage;
use crate::kernel::Kernel;
use crate::vm::qemu::{BootSpec, Start, Vm, VmConfig};
use crate::vm::vmstate::{self, Store};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// min, median and max of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Some(Stats { min: s[0], median, max: s[n - 1] })
    }
}

/// One line of the report: `name  min  median  max  (n runs)`.
pub fn line(name: &str, samples: &[f64]) -> String {
    match Stats::of(samples) {
        Some(s) => format!("{name:<28} {:>7.2}s {:>7.2}s {:>7.2}s   ({} runs)", s.min, s.median, s.max, samples.len()),
        None => format!("{name:<28} (no successful run)"),
    }
}

/// Seconds from QEMU start to the guest's ready line, booting `image`
/// (a bzImage or a PVH vmlinux) `runs` times.
pub fn boot_times(kernel: &Kernel, image: &Path, guest: &GuestImage, cfg: &VmConfig, runs: u32) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let share = tempfile::tempdir()?;
        let spec = BootSpec {
            kernel_id: kernel.id.clone(),
            kernel_image: image.to_path_buf(),
            initrd: guest.initrd.clone(),
            share: share.path().to_path_buf(),
        };
        let started = Instant::now();
        let vm = Vm::boot(&spec, cfg)?;
        out.push(started.elapsed().as_secs_f64());
        vm.shutdown();
    }
    Ok(out)
}

/// Seconds from QEMU start to the ready line of guests resumed from the
/// saved state in `store` (saved first, untimed, if there is none).
pub fn resume_times(
    kernel: &Kernel,
    image: &Path,
    guest: &GuestImage,
    cfg: &VmConfig,
    store: &Store,
    runs: u32,
) -> Result<Vec<f64>> {
    let spec = |share: &Path| BootSpec {
        kernel_id: kernel.id.clone(),
        kernel_image: image.to_path_buf(),
        initrd: guest.initrd.clone(),
        share: share.to_path_buf(),
    };
    let notice = |msg: String| eprintln!("crtest bench: {msg}");
    let first = tempfile::tempdir()?;
    vmstate::start(&spec(first.path()), cfg, Some(store), &notice)?.shutdown();
    let mut out = Vec::new();
    for _ in 0..runs {
        let share = tempfile::tempdir()?;
        let started = Instant::now();
        let vm = vmstate::start(&spec(share.path()), cfg, Some(store), &notice)?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(vm.start == Start::Resumed, "the guest was not resumed but {:?}", vm.start);
        out.push(secs);
        vm.shutdown();
    }
    Ok(out)
}

/// Wall seconds of virtme-ng booting `kernel` and running `uname -r`.
pub fn virtme_times(kernel: &Kernel, cache: &Path, runs: u32) -> Result<Vec<f64>> {
    let virtme_run = crate::guest::virtme::ensure_installed(cache)?;
    let image = crate::guest::virtme::kernel_tree(cache, kernel)?;
    (0..runs)
        .map(|_| crate::guest::virtme::time_once(&virtme_run, &image, &kernel.release).context("timing virtme-ng"))
        .collect()
}

/// `a / b` of the medians, as text.
pub fn ratio(name: &str, a: &[f64], b: &[f64]) -> String {
    match (Stats::of(a), Stats::of(b)) {
        (Some(a), Some(b)) => format!("{name}, medians: {:.2}x", a.median / b.median),
        _ => format!("{name}: (no successful runs)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle() {
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]), Some(Stats { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Stats::of(&[]), None);
        assert!(line("boot", &[1.0]).contains("1.00s"));
        assert_eq!(ratio("a / b", &[1.0, 2.0, 9.0], &[8.0]), "a / b, medians: 0.25x");
        assert!(ratio("a / b", &[], &[1.0]).contains("no successful"));
    }
}
