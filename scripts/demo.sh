#!/usr/bin/env bash
# The main job: install, build, mount memfs over io_uring, show it working, then compare the
# transports on a short fio + metadata workload with ringfuse-bench --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
scripts/enable-uring.sh || true
./build/tools/ringfuse-probe || true

mnt=$(mktemp -d /tmp/ringfuse-demo.XXXXXX)
log=$mnt.log
cleanup() {
	umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	wait 2>/dev/null || true
	rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

echo
echo "== mounting ringfuse-memfs on $mnt (transport=auto, prefers io_uring)"
./build/fs/ringfuse-memfs -f -o stats "$mnt" 2>"$log" &
for _ in $(seq 100); do
	grep -q " $mnt " /proc/self/mountinfo && break
	sleep 0.05
done
grep -q " $mnt " /proc/self/mountinfo || { cat "$log"; exit 1; }
grep -E "transport|INIT" "$log" || true
mkdir "$mnt/dir"
echo "hello over FUSE" > "$mnt/dir/hello.txt"
ln -s hello.txt "$mnt/dir/link"
dd if=/dev/urandom of="$mnt/dir/blob" bs=1M count=8 status=none
ls -la "$mnt/dir"
cat "$mnt/dir/link"
sha256sum "$mnt/dir/blob" | cut -c1-16
df -h "$mnt" | tail -n 1
umount "$mnt"
wait
echo "== daemon statistics"
grep "ringfuse-stats" "$log" || true
rm -f "$log"

echo
echo "== ringfuse-bench --quick: memfs over each transport, native tmpfs as the ceiling"
./build/tools/bench/ringfuse-bench --quick --fs memfs --build-dir build
