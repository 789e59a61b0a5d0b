//! A network link between two running guests: a virtio-net NIC hot-plugged
//! into each over QMP, joined by a QEMU `socket` netdev.
//!
//! Guests are usually resumed from a saved state, whose device set must be
//! the one QEMU started with, so the NIC cannot be on the command line: it
//! is plugged after the guest runs (`netdev_add` + `device_add`, ACPI PCI
//! hotplug of the default pc machine) and unplugged again (`device_del` +
//! `netdev_del`), so a guest can get another link later.
//!
//! The host end is a connected pair of TCP sockets on 127.0.0.1 that this
//! process makes (a listener on 127.0.0.1:0, one connect, one accept, the
//! listener closed) and hands to the two QEMUs (`getfd` over QMP, then
//! `netdev_add socket fd=...`). Nothing listens while the link is up, no
//! port is guessed, and no host network device, route or outside address
//! is involved: frames go QEMU -> loopback -> QEMU.
//!
//! In the guests the NIC is found by its MAC (the init loaded `virtio_net`
//! at boot), brought up and given `10.77.0.1/24` (first guest) or
//! `10.77.0.2/24` (second).

use crate::vm::qemu::{Vm, VmError};
use crate::vm::qmp::{Qmp, QmpError};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The guests' addresses, first and second end.
pub const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)];
pub const PREFIX_LEN: u8 = 24;
/// How long a guest may take to see a hot-plugged NIC (ACPI event, PCI scan,
/// driver probe; seconds under TCG), and QEMU to see it ejected.
const PLUG_TIMEOUT: Duration = Duration::from_secs(60);
/// QMP connections (QEMU answers at once while it runs).
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// QMP connections when a link is dropped: its guests may be gone already.
const DROP_QMP_TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);
/// Where QEMU lists devices added with an `id`.
const PERIPHERALS: &str = "/machine/peripheral";

/// What went wrong linking or unlinking two guests.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("making the loopback socket pair: {0}")]
    Sockets(std::io::Error),
    #[error("guest {kernel}: {step}: {source}")]
    Qmp { kernel: String, step: &'static str, source: QmpError },
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("guest {kernel}: setting up the link's interface failed (rc {rc}):\n{output}")]
    Guest { kernel: String, rc: i32, output: String },
    #[error("guest {kernel}: QEMU still has device {device} {secs}s after device_del (the guest did not eject it)")]
    NotEjected { kernel: String, device: String, secs: u64 },
}

/// One guest's side of a link.
#[derive(Debug, Clone)]
pub struct End {
    pub kernel: String,
    pub addr: Ipv4Addr,
    pub mac: String,
    /// The guest's name for the NIC (`eth0`).
    pub iface: String,
    /// QEMU's ids of the netdev and of the NIC.
    pub netdev: String,
    pub device: String,
    qmp: PathBuf,
}

/// Two guests joined by a virtual network link. Dropping it unplugs both
/// NICs without waiting; `disconnect` waits until the guests let go.
#[derive(Debug)]
pub struct Link {
    /// The loopback port the host end's listener had (only while connecting).
    pub port: u16,
    pub ends: [End; 2],
    plugged: bool,
}

/// QEMU ids of the `n`th link of this process (unique, so a link made
/// while an old NIC is still being ejected never collides with it).
pub fn ids(n: u32) -> (String, String) {
    (format!("crlink{n}"), format!("crlink{n}-nic"))
}

/// A locally administered MAC (QEMU's 52:54:00 prefix) for end 0 or 1 of
/// link `n`.
pub fn mac(n: u32, end: usize) -> String {
    format!("52:54:00:77:{:02x}:{:02x}", n % 256, end + 1)
}

/// `getfd`: QEMU takes the descriptor sent with the command under `name`.
pub fn getfd_args(name: &str) -> Value {
    json!({ "fdname": name })
}

/// `netdev_add`: a socket netdev over the descriptor `getfd` named like it.
pub fn netdev_args(id: &str) -> Value {
    json!({ "type": "socket", "id": id, "fd": id })
}

/// `device_add`: the guest's NIC on that netdev.
pub fn device_args(device: &str, netdev: &str, mac: &str) -> Value {
    json!({ "driver": "virtio-net-pci", "id": device, "netdev": netdev, "mac": mac })
}

/// `device_del` and `netdev_del`.
pub fn del_args(id: &str) -> Value {
    json!({ "id": id })
}

/// Whether a `qom-list` answer names `id` among its children.
pub fn lists(qom_list: &Value, id: &str) -> bool {
    qom_list.as_array().is_some_and(|children| children.iter().any(|c| c["name"] == id))
}

/// Shell (busybox) finding the interface with MAC `mac` in
/// `/sys/class/net` into `$dev`: looks once, then again every 0.1 s for up
/// to `secs`.
fn find_iface(mac: &str, secs: u64) -> String {
    format!(
        "dev=\ni=0\nwhile :; do\n\
         \tfor d in /sys/class/net/*; do\n\
         \t\t[ \"$(cat \"$d/address\" 2>/dev/null)\" = {mac} ] && dev=${{d##*/}}\n\
         \tdone\n\
         \t{{ [ -n \"$dev\" ] || [ $i -ge {n} ]; }} && break\n\
         \ti=$((i + 1))\n\
         \tsleep 0.1\n\
         done\n",
        n = secs * 10
    )
}

/// The guest script that waits for the hot-plugged NIC with `mac`, brings it
/// up with `addr`, and prints `CRTEST-LINK <iface>`.
pub fn guest_setup_script(mac: &str, addr: Ipv4Addr, secs: u64) -> String {
    format!(
        "{find}\
         if [ -z \"$dev\" ]; then\n\
         \techo \"no interface with MAC {mac} after {secs}s; have: $(ls /sys/class/net)\"\n\
         \tgrep -q '^virtio_net ' /proc/modules || echo 'virtio_net is not loaded'\n\
         \texit 3\n\
         fi\n\
         ip link set \"$dev\" up && ip addr add {addr}/{PREFIX_LEN} dev \"$dev\" || exit 4\n\
         echo \"CRTEST-LINK $dev\"\n",
        find = find_iface(mac, secs)
    )
}

/// The guest script that succeeds when no interface has `mac` any more.
pub fn guest_gone_script(mac: &str) -> String {
    format!("{}[ -z \"$dev\" ] || {{ echo \"$dev still has MAC {mac}\"; exit 1; }}\n", find_iface(mac, 0))
}

/// The interface name a setup script printed.
pub fn parse_iface(output: &str) -> Option<String> {
    output.lines().find_map(|l| l.strip_prefix("CRTEST-LINK ")).map(|s| s.trim().to_string())
}

/// Plugs a NIC into each guest, joins them and sets up the guests' side:
/// `a` gets 10.77.0.1, `b` 10.77.0.2.
pub fn connect(a: &mut Vm, b: &mut Vm) -> Result<Link, LinkError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (netdev, device) = ids(n);
    let end = |vm: &Vm, i: usize| End {
        kernel: vm.kernel_id.clone(),
        addr: ADDRS[i],
        mac: mac(n, i),
        iface: String::new(),
        netdev: netdev.clone(),
        device: device.clone(),
        qmp: vm.qmp_socket(),
    };
    let (port, sockets) = loopback_pair().map_err(LinkError::Sockets)?;
    let mut link = Link { port, ends: [end(a, 0), end(b, 1)], plugged: false };
    for (e, socket) in link.ends.iter().zip(&sockets) {
        // Plugged before the check, so a half-plugged link is unplugged on drop.
        link.plugged = true;
        plug(e, socket)?;
    }
    drop(sockets); // each QEMU has its own copy
    for (e, vm) in link.ends.iter_mut().zip([a, b]) {
        let r = vm.run("link-setup", &guest_setup_script(&e.mac, e.addr, PLUG_TIMEOUT.as_secs()), PLUG_TIMEOUT * 2)?;
        match (r.rc, parse_iface(&r.output)) {
            (0, Some(iface)) => e.iface = iface,
            _ => return Err(LinkError::Guest { kernel: e.kernel.clone(), rc: r.rc, output: r.output }),
        }
    }
    Ok(link)
}

impl Link {
    /// Unplugs both NICs and waits until both guests have ejected them, so
    /// the guests may get another link.
    pub fn disconnect(mut self) -> Result<(), LinkError> {
        self.plugged = false;
        let unplugged: Vec<Result<(), LinkError>> = self.ends.iter().map(|e| unplug(e, QMP_TIMEOUT)).collect();
        unplugged.into_iter().collect::<Result<(), LinkError>>()?;
        let deadline = Instant::now() + PLUG_TIMEOUT;
        for e in &self.ends {
            wait_ejected(e, deadline)?;
        }
        Ok(())
    }
}

/// Waits until QEMU no longer lists the end's NIC (the guest ejected it).
fn wait_ejected(e: &End, deadline: Instant) -> Result<(), LinkError> {
    let mut q = qmp(e, "connecting QMP", QMP_TIMEOUT)?;
    loop {
        let children = q
            .execute("qom-list", Some(json!({ "path": PERIPHERALS })))
            .map_err(|source| qmp_error(e, "qom-list", source))?;
        if !lists(&children, &e.device) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let secs = PLUG_TIMEOUT.as_secs();
            return Err(LinkError::NotEjected { kernel: e.kernel.clone(), device: e.device.clone(), secs });
        }
        std::thread::sleep(POLL);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.plugged {
            for e in &self.ends {
                let _ = unplug(e, DROP_QMP_TIMEOUT);
            }
        }
    }
}

/// A connected pair of TCP sockets on 127.0.0.1, and the port the listener
/// had. The accepted socket must be the one this process connected (another
/// local process could connect first).
fn loopback_pair() -> std::io::Result<(u16, [TcpStream; 2])> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    let ours = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    let mine = ours.local_addr()?;
    for _ in 0..8 {
        let (theirs, peer) = listener.accept()?;
        if peer == mine {
            for s in [&ours, &theirs] {
                s.set_nodelay(true)?;
            }
            return Ok((port, [ours, theirs]));
        }
        // Someone else's connection: dropped.
    }
    Err(std::io::Error::other(format!("127.0.0.1:{port}: our own connection was never accepted")))
}

fn qmp(e: &End, step: &'static str, timeout: Duration) -> Result<Qmp, LinkError> {
    Qmp::connect(&e.qmp, Instant::now() + timeout).map_err(|source| qmp_error(e, step, source))
}

fn qmp_error(e: &End, step: &'static str, source: QmpError) -> LinkError {
    LinkError::Qmp { kernel: e.kernel.clone(), step, source }
}

/// Hands `socket` to the guest's QEMU and plugs the NIC; on failure, takes
/// back what was done.
fn plug(e: &End, socket: &TcpStream) -> Result<(), LinkError> {
    let mut q = qmp(e, "connecting QMP", QMP_TIMEOUT)?;
    q.execute_with_fd("getfd", Some(getfd_args(&e.netdev)), socket.as_fd())
        .map_err(|s| qmp_error(e, "passing the socket", s))?;
    if let Err(s) = q.execute("netdev_add", Some(netdev_args(&e.netdev))) {
        let _ = q.execute("closefd", Some(json!({ "fdname": e.netdev })));
        return Err(qmp_error(e, "netdev_add", s));
    }
    if let Err(s) = q.execute("device_add", Some(device_args(&e.device, &e.netdev, &e.mac))) {
        let _ = q.execute("netdev_del", Some(del_args(&e.netdev)));
        return Err(qmp_error(e, "device_add", s));
    }
    Ok(())
}

/// Asks the guest to eject the NIC and drops the netdev (QEMU frees it with
/// the NIC once the guest has let go); does not wait.
fn unplug(e: &End, timeout: Duration) -> Result<(), LinkError> {
    let mut q = qmp(e, "connecting QMP", timeout)?;
    let del = |q: &mut Qmp, cmd: &str, id: &str| match q.execute(cmd, Some(del_args(id))) {
        Ok(_) => Ok(()),
        // Already gone (a half-plugged link, or a second unplug).
        Err(QmpError::Refused { desc, .. }) if desc.contains("not found") => Ok(()),
        Err(err) => Err(err),
    };
    del(&mut q, "device_del", &e.device).map_err(|s| qmp_error(e, "device_del", s))?;
    del(&mut q, "netdev_del", &e.netdev).map_err(|s| qmp_error(e, "netdev_del", s))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmp_arguments() {
        assert_eq!(ids(3), ("crlink3".to_string(), "crlink3-nic".to_string()));
        assert_eq!(getfd_args("crlink3"), json!({"fdname": "crlink3"}));
        assert_eq!(netdev_args("crlink3"), json!({"type": "socket", "id": "crlink3", "fd": "crlink3"}));
        assert_eq!(
            device_args("crlink3-nic", "crlink3", "52:54:00:77:03:01"),
            json!({"driver": "virtio-net-pci", "id": "crlink3-nic", "netdev": "crlink3", "mac": "52:54:00:77:03:01"})
        );
        assert_eq!(del_args("x"), json!({"id": "x"}));
    }

    #[test]
    fn macs_differ_per_end_and_link() {
        assert_eq!(mac(0, 0), "52:54:00:77:00:01");
        assert_eq!(mac(0, 1), "52:54:00:77:00:02");
        assert_eq!(mac(300, 1), "52:54:00:77:2c:02");
    }

    #[test]
    fn qom_list_lookup() {
        let children =
            json!([{"name": "type", "type": "string"}, {"name": "crlink0-nic", "type": "child<virtio-net-pci>"}]);
        assert!(lists(&children, "crlink0-nic"));
        assert!(!lists(&children, "crlink1-nic"));
        assert!(!lists(&json!({}), "crlink0-nic"));
    }

    #[test]
    fn setup_script_names_mac_and_address() {
        let s = guest_setup_script("52:54:00:77:00:02", ADDRS[1], 30);
        assert!(s.contains("= 52:54:00:77:00:02 ]"), "{s}");
        assert!(s.contains("[ $i -ge 300 ]"), "{s}");
        assert!(s.contains("ip addr add 10.77.0.2/24 dev \"$dev\""), "{s}");
        assert!(guest_gone_script("52:54:00:77:00:02").contains("[ $i -ge 0 ]"));
        assert_eq!(parse_iface("x\nCRTEST-LINK eth0\n"), Some("eth0".into()));
        assert_eq!(parse_iface("no interface"), None);
    }

    #[test]
    fn interface_scripts_run_in_sh() {
        let sh = |script: String| std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        // Every host has `lo`, whose MAC is all zeros.
        let out = sh(guest_gone_script("00:00:00:00:00:00"));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("lo still has MAC"), "{out:?}");
        assert_eq!(sh(guest_gone_script("52:54:00:77:ff:09")).status.code(), Some(0));
        let out = sh(guest_setup_script("52:54:00:77:ff:09", ADDRS[0], 0));
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("no interface with MAC 52:54:00:77:ff:09"), "{out:?}");
    }

    #[test]
    fn loopback_pair_is_connected_on_localhost() {
        use std::io::{Read, Write};
        let (port, [mut a, mut b]) = loopback_pair().unwrap();
        assert_eq!(b.local_addr().unwrap(), std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        assert_eq!(a.peer_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        a.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        // The listener is gone: nobody else can join. Asked of the kernel's
        // socket table, for a while: a process another test forks at that
        // moment holds a copy of the listener until it execs (a test connect
        // would even be queued there).
        let listening = format!("0100007F:{port:04X}");
        let listeners = || -> Vec<String> {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            table
                .lines()
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.get(1) == Some(&listening.as_str()) && f.get(3) == Some(&"0A")
                })
                .map(str::to_string)
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !listeners().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(listeners(), Vec::<String>::new());
    }
}
