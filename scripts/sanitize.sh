#!/usr/bin/env bash
# Builds thingmux with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs the
# tests labelled "sanitize" there (every unit test and the integration tests that feed the daemon
# hostile input; tests/CMakeLists.txt names them); the daemon under test is the sanitized build.
#   THINGMUX_SANITIZE_ALL=1 scripts/sanitize.sh   builds and runs the whole suite sanitized
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${THINGMUX_SANITIZE_ALL:-0} == 1 ]]; then
  THINGMUX_BUILD_DIR=build-asan THINGMUX_BUILD_FLAGS=sanitize bash scripts/build.sh -DTHINGMUX_SANITIZE=ON
  selection=()
else
  THINGMUX_BUILD_DIR=build-asan THINGMUX_BUILD_FLAGS=sanitize THINGMUX_BUILD_TARGET=sanitize_suite bash scripts/build.sh -DTHINGMUX_SANITIZE=ON
  selection=(-L 'unit|sanitize')
fi
cd build-asan
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --output-on-failure --parallel 2 --timeout 900 "${selection[@]}"
