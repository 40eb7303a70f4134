#!/usr/bin/env bash
# Install, build and run every test: C unit tests, Python unit tests and the mount suite on every
# transport (plain and ASan+UBSan builds), the unit suite under ThreadSanitizer, with clang and
# with gcc -O3. Every build has -Werror. Ends with "N passed, N failed".
#   scripts/test.sh                 everything
#   RINGFUSE_SKIP_ASAN=1 ...        no ASan+UBSan build
#   RINGFUSE_SKIP_TSAN=1 ...        no ThreadSanitizer build
#   RINGFUSE_SKIP_COMPILERS=1 ...   no clang and -O3 builds
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results="$root/build-results"
rm -rf "$results"
mkdir -p "$results"

scripts/deps.sh || { echo "ringfuse: installing dependencies failed"; echo "0 passed, 1 failed"; exit 1; }
scripts/enable-uring.sh || echo "ringfuse: io-uring tests will be skipped"

failed_steps=0
# Every build the script makes turns warnings into errors (users' builds do not: meson.build).
build() { # builddir [meson options...]
	local dir=$1
	shift
	if ! scripts/build.sh "$dir" -Dwerror=true "$@"; then
		echo "ringfuse: build $dir failed"
		failed_steps=$((failed_steps + 1))
		return 1
	fi
}
unit() { # name builddir: the C unit suite, its results counted by count_results.py
	meson test -C "$2" --suite unit --print-errorlogs --logbase "unit-$1" >/dev/null 2>&1
	cp "$2/meson-logs/unit-$1.json" "$results/" 2>/dev/null
}
run_suite() { # name builddir [meson options...]: unit tests and the whole pytest suite
	local name=$1 dir=$2
	shift 2
	build "$dir" "$@" || return
	unit "$name" "$dir"
	RINGFUSE_BUILD="$dir" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		--junitxml="$results/pytest-$name.xml" test/unit test/mount 2>&1 | tail -n 25
}

run_suite plain build
if [ -z "${RINGFUSE_SKIP_ASAN:-}" ]; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		run_suite asan build-asan -Dasan=true -Db_lundef=false
fi
if [ -z "${RINGFUSE_SKIP_TSAN:-}" ]; then
	# ThreadSanitizer on the unit suite (deferred replies racing new requests).
	build build-tsan -Dtsan=true -Db_lundef=false && unit tsan build-tsan
fi
# Other compilers and optimisation levels find other warnings and other undefined behaviour:
# clang, and gcc at -O3 (the release build users get with -Dbuildtype=release).
if [ -z "${RINGFUSE_SKIP_COMPILERS:-}" ]; then
	CC=clang build build-clang && unit clang build-clang
	build build-o3 -Dbuildtype=release && unit o3 build-o3
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
