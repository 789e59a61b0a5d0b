#!/usr/bin/env bash
# Installs what crtest needs on a Debian host: QEMU, busybox-static (guest
# userspace), CRIU (the engine copied into guests), cpio/kmod/xz/zstd (kernel
# packages and modules), gcc + static libc (workload programs), python3-protobuf
# (a local engine's own crit runs on the host's python3), python3-venv
# and udev (virtme-ng from PyPI for `crtest bench --vs-virtme`; its guests
# find their script's I/O ports through the host's udev), chromium and
# fonts-dejavu-core (the tests load report.html in headless Chromium).
set -euo pipefail
packages=(qemu-system-x86 busybox-static criu cpio kmod xz-utils zstd gcc libc6-dev util-linux python3-venv python3-protobuf udev chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "host-deps: all present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "host-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
