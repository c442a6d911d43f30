#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test: installs dependencies, builds, runs
# the fuzz targets for a bounded time, then the unit and integration tests (real mosquitto with
# a PKI made on the spot).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --bench
bash scripts/build.sh
# 20 s per target keeps the whole run (a dozen targets, then the suite, then CI's sanitizer pass)
# within its time budget; scripts/fuzz.sh alone defaults to 60 s.
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
cd build
ctest --output-on-failure --parallel 2 --timeout 600
