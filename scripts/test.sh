#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test: installs dependencies, builds, runs
# the fuzz targets for a bounded time, then the unit and integration tests (real mosquitto with
# a PKI made on the spot).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=()
timed() {  # timed NAME COMMAND...: runs it and notes how long it took
  local name=$1 t=$SECONDS; shift
  "$@"
  steps+=("$name $((SECONDS - t)) s")
}
timed bootstrap bash scripts/bootstrap.sh --bench
timed build bash scripts/build.sh
# 20 s per target, one per processor at a time, keeps the whole run (the targets, then the suite,
# then CI's sanitizer pass) within its time budget; scripts/fuzz.sh alone defaults to 60 s.
FUZZ_SECONDS=${FUZZ_SECONDS:-20} timed fuzz bash scripts/fuzz.sh
timed ctest ctest --test-dir build --output-on-failure --parallel 2 --timeout 600
(IFS=,; echo "test: passed (${steps[*]})")
