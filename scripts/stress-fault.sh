#!/usr/bin/env bash
# Runs fault tests again and again under CPU contention and counts how often they fail: the way
# to reproduce a loss that only shows under load, and to show it is gone. Not part of CI.
#
#   scripts/stress-fault.sh [--iterations N] [--filter GTEST_FILTER] [--load cpu|self|none]
#                           [--build-dir DIR] [--keep]
#
#   --iterations N   runs of the test binary (default 50)
#   --filter F       which tests (default: the broker-restart test,
#                    FaultTest.BrokerRestartedFiveTimesDuringTrafficFromTenAppsLosesNothingAccepted)
#   --load cpu       stress-ng keeps both CPUs busy meanwhile (default)
#   --load self      a second copy of the same tests runs alongside each iteration
#   --load none      no extra load
#   --build-dir DIR  where the tests were built (default build/)
#   --keep           keep the output of every run, not only of the failing ones
#
# Prints one line per run ("run 7/50: passed, 0 lost by thingmux, 2 after the broker, 31 duplicates")
# and a summary; the output of failing runs stays in DIR/stress/, with their test directories
# (broker log, daemon log, spool) named in it. Exits 1 if any run failed.
# Needs a test build (scripts/build.sh) and stress-ng for --load cpu (scripts/bootstrap.sh --stress).
set -euo pipefail
# shellcheck source=lib/help.sh
. "$(dirname "$0")/lib/help.sh"
cd "$(dirname "$0")/.."

iterations=50
filter=FaultTest.BrokerRestartedFiveTimesDuringTrafficFromTenAppsLosesNothingAccepted
load=cpu
build_dir=build
keep=0
usage() { script_help "$0"; }
while [ $# -gt 0 ]; do
  case $1 in
    --iterations) iterations=${2:?--iterations needs a number}; shift 2 ;;
    --filter) filter=${2:?--filter needs a gtest filter}; shift 2 ;;
    --load) load=${2:?--load needs cpu, self or none}; shift 2 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "stress-fault: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $iterations in '' | *[!0-9]* | 0) echo "stress-fault: --iterations takes a whole number above 0" >&2; exit 2 ;; esac
case $load in cpu | self | none) ;; *) echo "stress-fault: --load is cpu, self or none, not '$load'" >&2; exit 2 ;; esac

binary=$build_dir/tests/fault_test
[ -x "$binary" ] || { echo "stress-fault: $binary not found: build the tests first (scripts/build.sh)" >&2; exit 1; }
if [ "$load" = cpu ] && ! command -v stress-ng >/dev/null; then
  echo "stress-fault: stress-ng not found: run scripts/bootstrap.sh --stress (or use --load self)" >&2
  exit 1
fi

out=$build_dir/stress
rm -rf "$out"; mkdir -p "$out"
stressor=
cleanup() { [ -n "$stressor" ] && kill "$stressor" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
if [ "$load" = cpu ]; then
  stress-ng --cpu "$(nproc)" --cpu-load 90 --quiet &
  stressor=$!
fi

export THINGMUX_KEEP_TEST_DIRS=1  # the fixtures print what they keep; passing runs' are removed
# Test directories a run's output says were kept.
kept_dirs() { sed -n 's/^broker_fixture: keeping \(.*\) (THINGMUX_KEEP_TEST_DIRS=1)$/\1/p' "$@"; }
failed=0
lost_total=0
for ((i = 1; i <= iterations; i++)); do
  log=$out/run-$i.log
  companion=
  if [ "$load" = self ]; then
    "$binary" --gtest_filter="$filter" >"$out/companion-$i.log" 2>&1 &
    companion=$!
  fi
  if "$binary" --gtest_filter="$filter" >"$log" 2>&1; then status=passed; else status=FAILED; failed=$((failed + 1)); fi
  [ -n "$companion" ] && { wait "$companion" || true; }
  measured=$(grep -h '^\[ measured \]' "$log" | head -1 | sed 's/^\[ measured \] //')
  lost=$(sed -n 's/.* \([0-9][0-9]*\) lost by thingmux.*/\1/p' <<<"$measured")
  lost_total=$((lost_total + ${lost:-0}))
  echo "run $i/$iterations: $status${measured:+: $measured}"
  if [ -f "$out/companion-$i.log" ]; then kept_dirs "$out/companion-$i.log" | xargs -r rm -rf; fi
  if [ "$status" = passed ] && ((keep == 0)); then
    kept_dirs "$log" | xargs -r rm -rf
    rm -f "$log" "$out/companion-$i.log"
  fi
done
echo "stress-fault: $((iterations - failed)) of $iterations runs passed, $failed failed," \
  "$lost_total accepted messages lost by thingmux in all (load: $load; output of failing runs: $out/)"
((failed == 0))
