//! The seam between the run and its guests: the run starts guests through a
//! [`Launcher`] and drives each through [`Guest`]. QEMU implements both for
//! real runs; a fake implements them in unit tests (`fake.rs`), so the cell
//! flow is tested without booting anything.
//!
//! Files cross through the guest's share dir on the host (`in/ID` into the
//! guest, `out/ID` out of it), which both implementations use alike.

use crate::engine::GuestOp;
use crate::guest::image::GuestImage;
use crate::kernel::Kernel;
use crate::plan::GuestKind;
use crate::vm::link::LinkError;
use crate::vm::qemu::{BootSpec, CmdResult, Start, Vm, VmConfig, VmError};
use crate::vm::vmstate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A VM-level fault: a guest did not start, broke, or could not be linked.
/// The run turns it into a reason with `util::error::chain`.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("a QEMU guest links only with another")]
    NotQemu,
    /// A fault a test guest was scripted to have, in the run's own words.
    #[cfg(test)]
    #[error("{0}")]
    Scripted(String),
    /// A test guest could not leave its results in the share.
    #[cfg(test)]
    #[error(transparent)]
    Share(#[from] crate::util::error::IoAt),
}

/// A network link between two guests, up until closed (or dropped).
pub trait LinkHandle: Send {
    /// Takes the link down and waits until both guests let go of it.
    fn close(self: Box<Self>) -> Result<(), FaultError>;
}

/// A running guest.
pub trait Guest: Send + std::any::Any {
    /// The guest kernel's `uname -r`.
    fn release(&self) -> &str;
    fn boot_secs(&self) -> f64;
    fn start(&self) -> Start;
    /// Runs one operation's script; an error is a VM-level fault.
    fn run(&mut self, op: &GuestOp, timeout: Duration) -> Result<CmdResult, FaultError>;
    /// Powers the guest off; returns its console log.
    fn shutdown(self: Box<Self>) -> String;
    /// Joins this guest (`vm::link::ADDRS[0]`) and `other` (`ADDRS[1]`)
    /// with a network link between the two only.
    fn link(&mut self, other: &mut dyn Guest) -> Result<Box<dyn LinkHandle>, FaultError>;
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

/// Starts guests.
pub trait Launcher: Sync {
    /// Starts VM `name` of `kind`, sharing `share` with the host.
    fn launch(
        &self,
        name: &str,
        kind: &GuestKind,
        share: &Path,
        notice: &dyn Fn(String),
    ) -> Result<Box<dyn Guest>, FaultError>;
    /// The release a kind's kernel reports, for a guest that did not boot.
    fn release_of(&self, kind: &GuestKind) -> String;
}

/// What QEMU needs per guest kind.
pub struct KindImage {
    pub kernel: Kernel,
    /// What QEMU's `-kernel` gets (a PVH vmlinux when there is one).
    pub boot_image: PathBuf,
    pub image: GuestImage,
}

/// Real guests: QEMU, started from the kind's saved state when there is one.
pub struct Qemu {
    pub kinds: BTreeMap<GuestKind, KindImage>,
    pub vm: VmConfig,
    /// Saved guest states to start VMs from (None: always boot).
    pub states: Option<vmstate::Store>,
}

impl Launcher for Qemu {
    fn launch(
        &self,
        _name: &str,
        kind: &GuestKind,
        share: &Path,
        notice: &dyn Fn(String),
    ) -> Result<Box<dyn Guest>, FaultError> {
        let k = &self.kinds[kind];
        // Both guests of a kind share its saved state: the spec names the kind, not the VM.
        let spec = BootSpec {
            kernel_id: kind.name(),
            kernel_image: k.boot_image.clone(),
            initrd: k.image.initrd.clone(),
            share: share.to_path_buf(),
        };
        Ok(Box::new(vmstate::start(&spec, &self.vm, self.states.as_ref(), notice)?))
    }

    fn release_of(&self, kind: &GuestKind) -> String {
        self.kinds.get(kind).map(|k| k.kernel.release.clone()).unwrap_or_default()
    }
}

impl Guest for Vm {
    fn release(&self) -> &str {
        &self.release
    }
    fn boot_secs(&self) -> f64 {
        self.boot_secs
    }
    fn start(&self) -> Start {
        self.start
    }
    fn run(&mut self, op: &GuestOp, timeout: Duration) -> Result<CmdResult, FaultError> {
        Ok(Vm::run(self, &op.label, &op.script, timeout)?)
    }
    fn shutdown(self: Box<Self>) -> String {
        Vm::shutdown(*self)
    }
    fn link(&mut self, other: &mut dyn Guest) -> Result<Box<dyn LinkHandle>, FaultError> {
        let other = other.as_any().downcast_mut::<Vm>().ok_or(FaultError::NotQemu)?;
        Ok(Box::new(crate::vm::link::connect(self, other)?))
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl LinkHandle for crate::vm::link::Link {
    fn close(self: Box<Self>) -> Result<(), FaultError> {
        Ok(self.disconnect()?)
    }
}
