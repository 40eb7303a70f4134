#!/usr/bin/env bash
# Install, build (plain and ASan+UBSan) and run every test: C unit tests, Python unit tests and
# the mount suite on every transport. Ends with "N passed, N failed".
#   scripts/test.sh            everything
#   RINGFUSE_SKIP_ASAN=1 ...   plain build only
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results="$root/build-results"
rm -rf "$results"
mkdir -p "$results"

scripts/deps.sh || { echo "ringfuse: installing dependencies failed"; echo "0 passed, 1 failed"; exit 1; }
scripts/enable-uring.sh || echo "ringfuse: io-uring tests will be skipped"

failed_steps=0
run_suite() { # name builddir
	local name=$1 dir=$2
	if ! scripts/build.sh "$dir" $3; then
		echo "ringfuse: build $dir failed"
		failed_steps=$((failed_steps + 1))
		return
	fi
	meson test -C "$dir" --suite unit --print-errorlogs --logbase "unit-$name" >/dev/null 2>&1
	cp "$dir/meson-logs/unit-$name.json" "$results/" 2>/dev/null
	RINGFUSE_BUILD="$dir" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		--junitxml="$results/pytest-$name.xml" test/unit test/mount 2>&1 | tail -n 25
}

run_suite plain build ""
if [ -z "${RINGFUSE_SKIP_ASAN:-}" ]; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		run_suite asan build-asan "-Dasan=true -Db_lundef=false"
fi
if [ -z "${RINGFUSE_SKIP_TSAN:-}" ]; then
	# ThreadSanitizer on the unit suite (deferred replies racing new requests).
	if scripts/build.sh build-tsan -Dtsan=true -Db_lundef=false; then
		meson test -C build-tsan --suite unit --print-errorlogs --logbase unit-tsan >/dev/null 2>&1
		cp build-tsan/meson-logs/unit-tsan.json "$results/" 2>/dev/null
	else
		echo "ringfuse: build build-tsan failed"
		failed_steps=$((failed_steps + 1))
	fi
fi
# i386: compile every source file for 32-bit x86 (credential calls with 32-bit ids, 64-bit
# offsets). Compile only: Debian has no i386 liburing to link against without multiarch.
if [ -z "${RINGFUSE_SKIP_I386:-}" ]; then
	if { [ -f build-i386/build.ninja ] ||
		meson setup build-i386 --cross-file scripts/cross-i386.ini >/dev/null; } &&
		ninja -C build-i386 build.ninja >/dev/null &&
		objs=$(ninja -C build-i386 -t targets all | grep -o '^[^:]*\.c\.o') &&
		ninja -C build-i386 $objs >"$results/i386.log" 2>&1; then
		echo "ringfuse: i386 compile check passed ($(echo "$objs" | wc -l) files)"
	else
		echo "ringfuse: i386 compile check failed (build-results/i386.log)"
		failed_steps=$((failed_steps + 1))
	fi
fi
/usr/bin/python3 scripts/count_results.py "$results" "$failed_steps"
