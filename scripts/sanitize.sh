#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# the whole test suite there (the daemon under test is the sanitized build too).
set -euo pipefail
cd "$(dirname "$0")/.."
THINGMUX_BUILD_DIR=build-asan bash scripts/build.sh -DTHINGMUX_SANITIZE=ON
cd build-asan
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --output-on-failure --parallel 2 --timeout 900
