#!/usr/bin/env bash
# Switch on FUSE-over-io-uring in the running kernel (it is off by default), or say why not.
param=/sys/module/fuse/parameters/enable_uring
modprobe fuse 2>/dev/null || true
if [ ! -e "$param" ]; then
	echo "ringfuse: this kernel ($(uname -r)) has no FUSE-over-io-uring (needs 6.14+); the uring transport will be unavailable" >&2
	exit 1
fi
if [ "$(cat "$param")" != "Y" ]; then
	if ! echo Y > "$param" 2>/dev/null && ! sudo -n sh -c "echo Y > $param" 2>/dev/null; then
		echo "ringfuse: cannot enable io-uring for FUSE (need root to write $param)" >&2
		exit 1
	fi
fi
echo "ringfuse: FUSE-over-io-uring enabled ($param = $(cat "$param"))"
