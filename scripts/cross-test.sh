#!/usr/bin/env bash
# Cross-builds thingmux for another architecture and tests what it built under qemu-user:
#   1. the tree with its unit tests, into build-ARCH/ (CMake, cmake/cross-sysroot.cmake), and
#      every unit test run under emulation (ctest -L unit);
#   2. the README demo's scenario with ARCH's thingmuxd, thingmuxctl and example apps against this
#      machine's mTLS test broker (scripts/demo.sh --arch), its counts checked;
#   3. the Debian packages (packaging/build-deb.sh --arch, into build-deb/) and their checks,
#      lintian included (packaging/test-deb.sh --arch);
#   4. a report of what a small gateway cares about: package and binary sizes, and the idle
#      daemon's memory (scripts/cross-report.sh), written to build-deb/report-ARCH.txt.
#   bash scripts/cross-test.sh ARCH...        ARCH: arm64 or armhf; several run one after another
# Needs `scripts/bootstrap.sh --cross ARCH` first (the compiler, qemu, the sysroot) and the test
# dependencies of scripts/bootstrap.sh. Each step's time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/help.sh
. scripts/lib/help.sh
# shellcheck source=lib/cross.sh
. scripts/lib/cross.sh
case ${1:-} in -h | --help) script_help "$0"; exit 0 ;; esac
[ $# -gt 0 ] || { echo "usage: $0 ARCH... (ARCH: $cross_architectures)" >&2; exit 2; }
for arch in "$@"; do cross_arch "$arch" || exit 2; cross_require || exit 1; done

steps=()
timed() {  # timed NAME COMMAND...: runs it and notes how long it took
  local name=$1 t=$SECONDS; shift
  "$@"
  steps+=("$name $((SECONDS - t)) s")
}
for arch in "$@"; do
  cross_arch "$arch"
  # A tree configured against another sysroot keeps that sysroot's paths in its cache: start over.
  if [ -d "build-$arch" ] && [ "$(cat "build-$arch/thingmux-sysroot" 2>/dev/null)" != "$cross_sysroot" ]; then
    echo "cross-test: build-$arch/ was made with another sysroot than $cross_sysroot; building it anew"
    rm -rf "build-$arch"
  fi
  mkdir -p "build-$arch"
  echo "$cross_sysroot" >"build-$arch/thingmux-sysroot"
  # The same compiler flags as the package (dpkg-buildflags for ARCH), so that build-deb.sh takes
  # the objects of this build from ccache.
  timed "$arch build" env DEB_HOST_ARCH="$arch" THINGMUX_BUILD_DIR="build-$arch" \
    THINGMUX_BUILD_TARGET="unit_suite thingmuxd thingmuxctl thingmux-probe thingmux-example-controller thingmux-example-sensor" \
    bash scripts/build.sh -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/cross-sysroot.cmake"
  timed "$arch unit tests" ctest --test-dir "build-$arch" -L unit --output-on-failure --parallel "$(nproc)" --timeout 600
  timed "$arch demo" bash scripts/demo.sh --arch "$arch"
  timed "$arch packages" bash packaging/test-deb.sh --arch "$arch" --out build-deb
  timed "$arch report" bash scripts/cross-report.sh "$arch" build-deb
done
(IFS=,; echo "cross-test: passed for $* (${steps[*]})")
