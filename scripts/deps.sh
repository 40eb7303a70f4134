#!/usr/bin/env bash
# Install what building, running and testing ringfuse needs (Debian 12 or newer).
set -euo pipefail
pkgs=(meson ninja-build gcc clang pkg-config liburing-dev fuse3 fio python3 python3-pytest
      libclang-rt-14-dev valgrind attr acl util-linux procps gcc-multilib xfsprogs e2fsprogs
      libfuse3-dev fuse-overlayfs squashfuse squashfs-tools python3-pyfuse3 python3-trio)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "ringfuse: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
