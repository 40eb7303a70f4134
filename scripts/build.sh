#!/usr/bin/env bash
# Configure and build one build directory: scripts/build.sh DIR [meson options...]
set -euo pipefail
dir=${1:-build}
shift || true
if [ -f "$dir/build.ninja" ]; then
	meson configure "$dir" "$@" >/dev/null
else
	meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
