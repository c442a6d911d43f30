#!/usr/bin/env bash
# CTest bench_smoke: runs scripts/bench.sh --quick (small numbers, no callgrind; the all-CPU and
# the one-CPU pass) into a scratch directory and checks that every path produced every figure,
# that thingmux (over IPC and over its MQTT face) lost nothing, and that the charts exist. It asserts no speed: benchmarks report ratios, tests never fail on a time.
#   tests/bench/bench-smoke.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?usage: bench-smoke.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT

THINGMUX_BUILD_DIR=$build_dir bash "$root/scripts/bench.sh" --quick --no-callgrind --skip-build \
    --out "$out/benchmarks.md" --img "$out/img"
tsv=$out/benchmarks.tsv
failures=0
fail() { echo "bench-smoke: $*" >&2; failures=$((failures + 1)); }
expect() {  # SECTION SCENARIO PATH: a positive number is recorded
    local v
    v=$(awk -F'\t' -v s="$1" -v c="$2" -v p="$3" '$1 == s && $2 == c && $3 == p { print $4; exit }' "$tsv")
    awk -v v="$v" 'BEGIN { exit !(v != "" && v + 0 > 0) }' || fail "no $1 figure for '$2' over $3 (got '${v}')"
}
expect_zero() {  # SECTION SCENARIO PATH
    local v
    v=$(awk -F'\t' -v s="$1" -v c="$2" -v p="$3" '$1 == s && $2 == c && $3 == p { print $4; exit }' "$tsv")
    [[ $v == 0 ]] || fail "$1 for '$2' over $3 is '$v', expected 0"
}
for qos in 0 1; do
    for path in direct thingmux mqtt-face bridge; do expect throughput "QoS $qos, 1 app" "$path"; done
    for path in thingmux mqtt-face bridge; do expect throughput "QoS $qos, 10 apps" "$path"; done
    for apps in "1 app" "10 apps"; do
        for path in thingmux mqtt-face; do expect_zero throughput-lost "QoS $qos, $apps" "$path"; done
    done
done
expect_zero throughput-lost "QoS 1, 1 app" direct
expect fanout "1 subscriber" direct
for n in "1 subscriber" "10 subscribers" "100 subscribers"; do
    for path in thingmux mqtt-face bridge; do expect fanout "$n" "$path"; done
    for path in thingmux mqtt-face; do expect_zero fanout-lost "$n" "$path"; done
done
for p in p50 p99 p99.9; do
    for path in direct thingmux mqtt-face bridge; do expect latency "$p" "$path"; done
done
for path in thingmux mqtt-face; do expect_zero latency-lost "round trips" "$path"; done
for path in thingmux mqtt-face bridge; do
    for scenario in idle "100 clients, 1000 subscriptions"; do
        expect rss "$scenario" "$path"
        expect pss "$scenario" "$path"
        expect uss "$scenario" "$path"
        expect anon "$scenario" "$path"
    done
    expect cpu "per 100k QoS 1 publishes: the process in the middle" "$path"
    expect cpu "per 100k QoS 1 publishes: all (apps + middle + upstream broker)" "$path"
done
# The one-CPU pass (every process pinned with taskset) measured the same paths and lost nothing.
for path in direct thingmux mqtt-face bridge; do
    expect 1cpu:throughput "QoS 1, 1 app" "$path"
    expect 1cpu:latency p50 "$path"
done
for path in thingmux mqtt-face; do
    expect_zero 1cpu:throughput-lost "QoS 1, 10 apps" "$path"
    expect_zero 1cpu:fanout-lost "100 subscribers" "$path"
    expect_zero 1cpu:latency-lost "round trips" "$path"
done
grep -q '^## On one CPU' "$out/benchmarks.md" && grep -q 'on one CPU\*\* |' "$out/benchmarks.md" ||
    fail "the report has no one-CPU section or goals"
for path in thingmux bridge; do expect ready "READY=1 (socket listening)" "$path"; done
expect ready "upstream connected" thingmux
expect cpu "per 100k QoS 1 publishes: all (apps + middle + upstream broker)" direct
for chart in throughput fanout latency; do
    [[ -s $out/img/bench-$chart.png ]] || fail "chart bench-$chart.png missing"
done
grep -q '^| QoS 1, 1 app | [0-9]' "$out/benchmarks.md" || fail "the report has no throughput table"
# direct, thingmux, mqtt-face, bridge, then the three ratios: all numbers in the QoS 1 row.
grep -Eq '^\| QoS 1, 1 app( \| [0-9.]+){7} \|$' "$out/benchmarks.md" ||
    fail "the throughput table has no mqtt-face column or no mqtt-face / bridge ratio"
grep -q '^| \*\*mqtt-face ≥ bridge, every figure\*\* | [0-9]* of [0-9]* measured goals met |' "$out/benchmarks.md" ||
    fail "the report has no mqtt-face goal line"
((failures == 0)) || { echo "bench-smoke: $failures problem(s); the report:" >&2; cat "$out/benchmarks.md" >&2; exit 1; }
echo "bench-smoke: every figure present, nothing lost over thingmux or its MQTT face, charts written"
