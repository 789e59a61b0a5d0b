//! The run's VMs: each started once on first use, one command at a time per
//! VM (VMs run in parallel), marked down on a VM-level fault, and powered
//! off with their console logs kept for the report.

use super::guest::{Guest, Launcher, LinkHandle};
use crate::engine::{GuestOp, OpPaths};
use crate::event::{Event, Reporter};
use crate::plan::GuestKind;
use crate::result::{kind_of_vm, VmRecord};
use crate::util::error::chain;
use crate::vm::qemu::CmdResult;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a guest cannot do what the run asked: it did not start, broke, or
/// crtest was interrupted. Always crtest's or the machine's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuestError(pub String);

impl From<&str> for GuestError {
    fn from(s: &str) -> Self {
        GuestError(s.to_string())
    }
}

/// A VM slot: up, or down (failed to boot, or broken by a later fault).
enum Slot {
    Up(Box<dyn Guest>),
    Down(String),
}

type Handle = Arc<Mutex<Option<(Slot, f64)>>>;

pub struct Pool<'a> {
    launcher: &'a dyn Launcher,
    reporter: &'a dyn Reporter,
    work: &'a Path,
    /// How long the host waits for one script (its own timeout plus grace).
    timeout: Duration,
    vms: Mutex<BTreeMap<String, Handle>>,
    /// Records of VMs that are gone, by name.
    gone: Mutex<BTreeMap<String, VmRecord>>,
    boot_times: Mutex<BTreeMap<String, f64>>,
    interrupted: &'a (dyn Fn() -> bool + Sync),
}

impl<'a> Pool<'a> {
    pub fn new(
        launcher: &'a dyn Launcher,
        reporter: &'a dyn Reporter,
        work: &'a Path,
        timeout: Duration,
        interrupted: &'a (dyn Fn() -> bool + Sync),
    ) -> Self {
        Pool {
            launcher,
            reporter,
            work,
            timeout,
            vms: Mutex::new(BTreeMap::new()),
            gone: Mutex::new(BTreeMap::new()),
            boot_times: Mutex::new(BTreeMap::new()),
            interrupted,
        }
    }

    fn handle(&self, vm: &str) -> Handle {
        self.vms.lock().unwrap().entry(vm.to_string()).or_default().clone()
    }

    /// The host side of VM `vm`'s share.
    fn share(&self, vm: &str) -> PathBuf {
        self.work.join(format!("vm-{vm}"))
    }

    /// Where op `op` of VM `vm` leaves its results on the host.
    pub fn outbox(&self, vm: &str, op: &OpPaths) -> PathBuf {
        self.share(vm).join("out").join(&op.id)
    }

    /// Where the host puts what op `op` of VM `vm` reads.
    pub fn inbox(&self, vm: &str, op: &OpPaths) -> PathBuf {
        self.share(vm).join("in").join(&op.id)
    }

    /// Starts (once) VM `vm`; returns its start time or why it is down.
    pub fn ensure(&self, vm: &str) -> Result<f64, GuestError> {
        let handle = self.handle(vm);
        let mut guard = handle.lock().unwrap();
        if let Some((slot, secs)) = guard.as_ref() {
            return match slot {
                Slot::Up(_) => Ok(*secs),
                Slot::Down(why) => Err(GuestError(why.clone())),
            };
        }
        if (self.interrupted)() {
            return Err("crtest was interrupted".into());
        }
        self.reporter.event(&Event::Booting { kernel: vm.into() });
        let kind = GuestKind::parse(kind_of_vm(vm));
        let notice = |msg: String| self.reporter.event(&Event::Notice(msg));
        let (slot, secs, result) = match self.launcher.launch(vm, &kind, &self.share(vm), &notice) {
            Ok(guest) => {
                let secs = guest.boot_secs();
                let release = guest.release().to_string();
                self.reporter.event(&Event::Booted { kernel: vm.into(), release, secs, start: guest.start() });
                self.boot_times.lock().unwrap().insert(vm.into(), secs);
                (Slot::Up(guest), secs, Ok(secs))
            }
            Err(e) => {
                let msg = chain(&e);
                self.reporter.event(&Event::BootFailed { kernel: vm.into(), error: msg.clone() });
                let record = VmRecord {
                    kernel: vm.into(),
                    release: self.launcher.release_of(&kind),
                    boot_secs: None,
                    start: None,
                    console: msg.clone(),
                };
                self.gone.lock().unwrap().insert(vm.into(), record);
                (Slot::Down(msg.clone()), 0.0, Err(msg))
            }
        };
        *guard = Some((slot, secs));
        result.map_err(GuestError)
    }

    /// Runs `op` on VM `vm`. A VM-level fault marks the VM down.
    pub fn exec(&self, vm: &str, op: &GuestOp) -> Result<CmdResult, GuestError> {
        let handle = self.handle(vm);
        let mut guard = handle.lock().unwrap();
        let (slot, _) = guard.as_mut().ok_or("VM not booted")?;
        if (self.interrupted)() {
            return Err("crtest was interrupted".into());
        }
        let guest = match slot {
            Slot::Up(guest) => guest,
            Slot::Down(why) => return Err(GuestError(format!("VM unusable: {}", first_line(why)))),
        };
        match guest.run(op, self.timeout) {
            Ok(r) => {
                let (kernel, label, ok, secs) = (vm.into(), op.label.clone(), r.rc == 0, r.secs);
                self.reporter.event(&Event::Op { kernel, label, ok, secs });
                Ok(r)
            }
            Err(e) => {
                let msg = chain(&e);
                if let Slot::Up(guest) = std::mem::replace(slot, Slot::Down(msg.clone())) {
                    self.keep(vm, guest);
                }
                Err(GuestError(msg))
            }
        }
    }

    /// Links VMs `a` (the first address) and `b`, both started.
    pub fn link(&self, a: &str, b: &str) -> Result<Box<dyn LinkHandle>, GuestError> {
        let (ha, hb) = (self.handle(a), self.handle(b));
        // Both locks, always in name order: two links being made never wait on each other.
        let (mut ga, mut gb) = match a < b {
            true => {
                let ga = ha.lock().unwrap();
                (ga, hb.lock().unwrap())
            }
            false => {
                let gb = hb.lock().unwrap();
                (ha.lock().unwrap(), gb)
            }
        };
        match (ga.as_mut(), gb.as_mut()) {
            (Some((Slot::Up(x), _)), Some((Slot::Up(y), _))) => x.link(y.as_mut()).map_err(|e| GuestError(chain(&e))),
            _ => Err(GuestError(format!("linking {a} and {b}: a guest is not up"))),
        }
    }

    /// Tells the reporters something worth knowing that is no verdict.
    pub fn notice(&self, msg: String) {
        self.reporter.event(&Event::Notice(msg));
    }

    pub fn boot_secs(&self, vm: &str) -> f64 {
        self.boot_times.lock().unwrap().get(vm).copied().unwrap_or(0.0)
    }

    /// Powers VM `vm` off (when up) and keeps its record.
    pub fn shutdown(&self, vm: &str) {
        let taken = self.vms.lock().unwrap().remove(vm).and_then(|h| h.lock().unwrap().take());
        if let Some((Slot::Up(guest), _)) = taken {
            self.keep(vm, guest);
        }
    }

    fn keep(&self, vm: &str, guest: Box<dyn Guest>) {
        let record = VmRecord {
            kernel: vm.to_string(),
            release: guest.release().to_string(),
            boot_secs: Some(guest.boot_secs()),
            start: Some(guest.start()),
            console: String::new(),
        };
        let console = guest.shutdown();
        self.gone.lock().unwrap().insert(vm.to_string(), VmRecord { console, ..record });
    }

    /// Powers every VM off and returns every VM's record.
    pub fn shutdown_all(&self) -> Vec<VmRecord> {
        let vms = std::mem::take(&mut *self.vms.lock().unwrap());
        for (name, handle) in vms {
            if let Some((Slot::Up(guest), _)) = handle.lock().unwrap().take() {
                self.keep(&name, guest);
            }
        }
        std::mem::take(&mut *self.gone.lock().unwrap()).into_values().collect()
    }
}

pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
