#!/bin/sh
# crtest guest init (PID 1). Brings the guest up as an ordered checklist,
# reporting every step on the console as "CRTEST-STEP <name> <rc>", then runs
# the host's commands until told to power off. No test logic lives here: the
# host writes each command as a script into the 9p share.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

step() {
	name=$1
	shift
	"$@"
	rc=$?
	echo "CRTEST-STEP $name $rc"
	return $rc
}

fatal() {
	echo "CRTEST-FATAL $1"
	sync
	poweroff -f
	exit 1
}

# Mounts as data: type, mount point, options.
mount_all() {
	while read -r fstype dir opts; do
		mkdir -p "$dir" && mount -t "$fstype" -o "$opts" "$fstype" "$dir" || return 1
	done <<MOUNTS
proc /proc nosuid,nodev,noexec
sysfs /sys nosuid,nodev,noexec
devtmpfs /dev mode=0755
devpts /dev/pts gid=5,mode=0620,ptmxmode=0666
tmpfs /dev/shm mode=1777
mqueue /dev/mqueue nosuid,nodev,noexec
tmpfs /tmp mode=1777
tmpfs /run mode=0755
MOUNTS
}

load_modules() {
	for m in $(cat /etc/crtest/modules); do
		insmod "$m" 2>/dev/null || grep -q "^$(basename "$m" .ko) " /proc/modules || echo "CRTEST-WARN insmod $m failed"
	done
	return 0
}

# The host may save the guest's state here and start later guests from it:
# wait for its go line, which carries the time and fresh randomness, as every
# guest resumed from one state starts with the same clock and RNG state. The
# share is mounted after this point: QEMU cannot save a guest with 9p mounted.
await_host() {
	echo "CRTEST-PAUSE $(has_vmgenid && echo reseeds)"
	read -r verb epoch seed how || return 1
	[ "$verb" = go ] || return 1
	date -s "@$epoch" >/dev/null && echo "$seed" >/dev/urandom || return 1
	[ "$how" != resumed ] || await_reseed
}

# Writing to /dev/urandom does not reseed the kernel's RNG; a new VM
# generation ID (vmgenid, QEMU gives each resumed guest one) does, right
# after the resume. Only guests whose kernel has the driver (>= 5.18; the
# pause line says "reseeds") are saved; they wait for it here (at most 2 s).
# (An ACPI driver until 6.9, a platform driver since 6.10.)
has_vmgenid() {
	ls /sys/bus/acpi/drivers/vmgenid /sys/bus/platform/drivers/vmgenid 2>/dev/null | grep -q :
}
await_reseed() {
	for _ in $(seq 40); do
		dmesg | grep -q 'reseeded due to virtual machine fork' && return 0
		sleep 0.05
	done
	echo "CRTEST-WARN no RNG reseed after resume"
}

mount_share() {
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 xfer /mnt/xfer
}

# The harness gives each dumped workload a PID range of its own (via
# ns_last_pid), so restores never collide with PIDs in use on the target.
tune() {
	echo 4194304 >/proc/sys/kernel/pid_max && echo 1 >/proc/sys/kernel/print-fatal-signals && stty -echo
}

# The initramfs is the kernel's rootfs, where pivot_root (used by workloads
# with their own mount namespace, and by CRIU restoring one) cannot work.
# Move everything onto a tmpfs and start again from there.
to_tmpfs() {
	mkdir -p /newroot && mount -t tmpfs -o mode=0755 root /newroot || return 1
	for d in /*; do
		[ "$d" = /newroot ] || cp -a "$d" /newroot/ || return 1
	done
	touch /newroot/.crtest-tmpfs
}
if [ ! -e /.crtest-tmpfs ]; then
	step tmpfs-root to_tmpfs || fatal tmpfs-root
	exec switch_root /newroot /init
fi

step mounts mount_all || fatal mounts
step modules load_modules
step loopback ip link set lo up || fatal loopback
step go await_host || fatal go
step share mount_share || fatal share
step tune tune || fatal tune
echo "CRTEST-READY $(uname -r)"

while read -r verb arg; do
	case "$verb" in
	run)
		sh "/mnt/xfer/cmd/$arg.sh" </dev/null >"/mnt/xfer/cmd/$arg.out" 2>&1
		echo "CRTEST-END $arg $?"
		;;
	poweroff) break ;;
	"") ;;
	*) echo "CRTEST-UNKNOWN $verb" ;;
	esac
done
sync
poweroff -f
