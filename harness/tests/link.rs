//! Two real guests (QEMU, Debian 6.1) joined by a hot-plugged link: they
//! ping each other, the host end is a loopback TCP pair owned by the two
//! QEMUs with nothing listening, and after `disconnect` the NICs are gone
//! from the guests, which can then get another link.

mod common;
use common::{GuestParts, SERIAL};
use crtest::vm::link::{self, ADDRS};
use crtest::vm::qemu::Vm;
use crtest::vm::vmstate::{self, Store};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const KERNEL: &str = "6.1";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Two ready guests of `kernel` (resumed from the user's saved states when
/// there are some) and their share dirs.
fn two_guests(kernel: &str) -> (Vm, Vm, [tempfile::TempDir; 2]) {
    let parts = GuestParts::new(kernel);
    let store = Store::in_cache(&crtest::util::fsutil::cache_dir());
    let notice = |m: String| eprintln!("note: {m}");
    let shares = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut vms = shares
        .iter()
        .map(|share| vmstate::start(&parts.spec(share.path()), &parts.cfg, Some(&store), &notice).unwrap());
    let (a, b) = (vms.next().unwrap(), vms.next().unwrap());
    (a, b, shares)
}

fn run(vm: &mut Vm, label: &str, script: &str) -> String {
    let r = vm.run(label, script, CMD_TIMEOUT).unwrap();
    assert_eq!(r.rc, 0, "{} {label}:\n{}", vm.kernel_id, r.output);
    r.output
}

/// One row of /proc/net/tcp{,6}.
#[derive(Debug)]
struct TcpRow {
    local: String,
    remote: String,
    state: String,
    inode: String,
}

fn tcp_rows(file: &str) -> Vec<TcpRow> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            TcpRow { local: f[1].into(), remote: f[2].into(), state: f[3].into(), inode: f[9].into() }
        })
        .collect()
}

/// The rows with `port` (hex in the file) on either side.
fn rows_on_port(file: &str, port: u16) -> Vec<TcpRow> {
    let suffix = format!(":{port:04X}");
    tcp_rows(file).into_iter().filter(|r| r.local.ends_with(&suffix) || r.remote.ends_with(&suffix)).collect()
}

/// Socket inodes among the open files of the QEMU of `vm`.
fn qemu_sockets(vm: &Vm) -> BTreeSet<String> {
    let pid = std::fs::read_to_string(vm.share().join("qemu.pid")).unwrap();
    std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| t.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
        .collect()
}

#[test]
fn linked_guests_ping_over_loopback_and_unplug() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (mut a, mut b, _shares) = two_guests(KERNEL);
    eprintln!("two guests ready in {:.1}s ({:?}, {:?})", started.elapsed().as_secs_f64(), a.start, b.start);

    let t = Instant::now();
    let l = link::connect(&mut a, &mut b).expect("linking the guests");
    eprintln!("linked in {:.1}s: {l:?}", t.elapsed().as_secs_f64());
    assert_eq!([l.ends[0].addr, l.ends[1].addr], ADDRS);
    let ping = |vm: &mut Vm, to| run(vm, "ping", &format!("ping -c 3 -W 10 {to}"));
    let out = ping(&mut a, ADDRS[1]);
    assert!(out.contains("3 packets received"), "{out}");
    let out = ping(&mut b, ADDRS[0]);
    assert!(out.contains("3 packets received"), "{out}");
    let addr = run(&mut b, "addr", &format!("ip -4 addr show dev {}", l.ends[1].iface));
    assert!(addr.contains("inet 10.77.0.2/24"), "{addr}");

    // The host end: one established loopback TCP connection, each socket
    // held by one of the QEMUs; nothing listens, nothing on IPv6.
    let rows = rows_on_port("/proc/net/tcp", l.port);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert!(r.local.starts_with("0100007F:") && r.remote.starts_with("0100007F:"), "not loopback: {r:?}");
        assert_eq!(r.state, "01", "not ESTABLISHED: {r:?}");
    }
    for (vm, r) in [(&a, &rows), (&b, &rows)] {
        let held = qemu_sockets(vm);
        assert_eq!(r.iter().filter(|row| held.contains(&row.inode)).count(), 1, "{held:?} {rows:?}");
    }
    assert!(rows_on_port("/proc/net/tcp6", l.port).is_empty());
    let (port, mac_b) = (l.port, l.ends[1].mac.clone());

    let t = Instant::now();
    l.disconnect().expect("unplugging");
    eprintln!("unplugged in {:.1}s", t.elapsed().as_secs_f64());
    for vm in [&mut a, &mut b] {
        assert_eq!(run(vm, "nics", "ls /sys/class/net").split_whitespace().collect::<Vec<_>>(), ["lo"]);
    }
    run(&mut b, "gone", &link::guest_gone_script(&mac_b));
    let open = rows_on_port("/proc/net/tcp", port);
    assert!(open.iter().all(|r| r.state != "01"), "still connected: {open:?}");

    // Another link between the same guests; dropping it unplugs it (the
    // guests let go of the NICs soon after).
    let again = link::connect(&mut a, &mut b).expect("linking again");
    let out = ping(&mut b, ADDRS[0]);
    assert!(out.contains("3 packets received"), "{out}");
    drop(again);
    for vm in [&mut a, &mut b] {
        run(
            vm,
            "dropped",
            "for _ in $(seq 300); do [ \"$(ls /sys/class/net)\" = lo ] && exit 0; sleep 0.1; done; exit 1",
        );
    }
    a.shutdown();
    b.shutdown();
    eprintln!("whole test {:.1}s", started.elapsed().as_secs_f64());
}
