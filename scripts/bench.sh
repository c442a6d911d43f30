#!/usr/bin/env bash
# Publish-throughput benchmark (first slice of issue 8): thingmux vs a direct connection, in one
# run, against the local AWS-like mosquitto (mTLS). Writes docs/benchmarks.md.
#
#   scripts/bench.sh [--messages N] [--size BYTES] [--apps-many A] [--runs R] [--skip-build] [--out FILE]
#   defaults: 100000 messages of 200 bytes, 10 apps for the many-apps row, 5 runs (median kept);
#   --skip-build: do not call scripts/bootstrap.sh and scripts/build.sh (binaries already built).
# Not part of CTest or CI. Uses $THINGMUX_BUILD_DIR (default build/) like scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
invocation="scripts/bench.sh${*:+ $*}"

messages=100000
size=200
apps_many=10
runs=5
skip_build=0
out=docs/benchmarks.md
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while (($# > 0)); do
    case $1 in
        --messages) messages=${2:?}; shift 2 ;;
        --size) size=${2:?}; shift 2 ;;
        --apps-many) apps_many=${2:?}; shift 2 ;;
        --runs) runs=${2:?}; shift 2 ;;
        --skip-build) skip_build=1; shift ;;
        --out) out=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

build_dir=${THINGMUX_BUILD_DIR:-build}
if ((skip_build == 0)); then
    scripts/bootstrap.sh
    scripts/build.sh -DTHINGMUX_BUILD_TESTS=ON
fi
bin=$root/$build_dir/bin
for b in thingmuxd thingmux-bench; do
    [[ -x $bin/$b ]] || { echo "bench: $bin/$b missing: run scripts/build.sh (THINGMUX_BUILD_DIR=$build_dir)" >&2; exit 1; }
done

broker=$root/tests/support/aws-like-broker
work=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-bench.XXXXXX")
daemon_pid=
cleanup() {
    if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    "$broker" stop "$work/broker" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# gateway-01 is the daemon's Thing; the direct client uses its own Thing (same ACL pattern) so the
# two never take each other's client ID over.
"$broker" pki "$work/broker" gateway-01 bench-direct >/dev/null
"$broker" start "$work/broker" >/dev/null
# The tests' broker logs every packet (log_type all). That makes mosquitto itself the bottleneck
# of the direct path and hides the daemon's cost, so the benchmark keeps only its notices.
sed -i 's/^log_type all$/log_type error\nlog_type warning\nlog_type notice/' "$work/broker/mosquitto.conf"
"$broker" restart "$work/broker" >/dev/null
eval "$("$broker" env "$work/broker")"

sock=$work/thingmux.sock
cat >"$work/thingmux.yaml" <<EOF
things:
  - name: gateway-01
    endpoint: $TMX_BROKER_HOST
    port: $TMX_BROKER_PORT
    protocol: mqtt5
    ca: $TMX_CA
    cert: $TMX_CERT_GATEWAY_01
    key: $TMX_KEY_GATEWAY_01
    limits:
      publishes_per_second: unlimited
      bytes_per_second: unlimited
      inflight: 90
apps:
  - name: bench
    match: { uid: $(id -u) }
    publish: ['dt/\${thing}/#']
ipc:
  socket: $sock
  mode: "0666"
  group: ""
spool:
  path: $work/spool.db
EOF
"$bin/thingmuxd" --config "$work/thingmux.yaml" --bus none >"$work/thingmuxd.log" 2>&1 &
daemon_pid=$!
for _ in {1..150}; do
    [[ -S $sock ]] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
[[ -S $sock ]] || { echo "bench: thingmuxd did not create $sock; its log:" >&2; cat "$work/thingmuxd.log" >&2; exit 1; }

direct_args=(--host "$TMX_BROKER_HOST" --port "$TMX_BROKER_PORT" --thing bench-direct --ca "$TMX_CA"
    --cert "$TMX_CERT_BENCH_DIRECT" --key "$TMX_KEY_BENCH_DIRECT" --inflight 90)
common=(--messages "$messages" --size "$size")

# run NAME ARGS...: runs the driver $runs times, prints each line, stores the median msgs/s.
declare -A median all
run() {
    local name=$1 line rates=()
    shift
    for ((i = 1; i <= runs; i++)); do
        line=$("$bin/thingmux-bench" "$@" "${common[@]}") || { echo "bench: '$name' failed: $line" >&2; exit 1; }
        echo "$name: $line"
        rates+=("$(sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' <<<"$line")")
    done
    median[$name]=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    all[$name]=$(printf '%s\n' "${rates[@]}" | paste -sd ' ')
}

run direct-q1 direct --qos 1 "${direct_args[@]}"
run thingmux-q1-1 thingmux --qos 1 --apps 1 --socket "$sock"
run thingmux-q1-many thingmux --qos 1 --apps "$apps_many" --socket "$sock"
run direct-q0 direct --qos 0 "${direct_args[@]}"
run thingmux-q0-1 thingmux --qos 0 --apps 1 --socket "$sock"

kill -0 "$daemon_pid" 2>/dev/null || { echo "bench: thingmuxd died during the run; its log:" >&2; cat "$work/thingmuxd.log" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mosq=$(mosquitto -h 2>/dev/null | sed -n '1s/^mosquitto version //p' || true)
[[ -n $mosq ]] || mosq=$(PATH=$PATH:/usr/sbin mosquitto -h 2>/dev/null | sed -n '1s/^mosquitto version //p' || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

mkdir -p "$(dirname "$out")"
cat >"$out" <<EOF
# Benchmarks

Generated by \`scripts/bench.sh\` (one command; it calls \`scripts/bootstrap.sh\` and
\`scripts/build.sh\`, starts the AWS-like mosquitto from \`tests/support/aws-like-broker\` with mTLS
on loopback, starts \`thingmuxd --bus none\` against it, and runs \`thingmux-bench\` from
\`tests/bench/\`). Status: **first slice of issue 8** — publish throughput only; the issue stays open.

## Publish throughput

$messages messages of $size bytes per scenario, median msgs/s of $runs runs (each run in the "runs" column).
The clock starts when every connection is up and stops at the last completion: the broker's PUBACK
for QoS 1; for QoS 0, the PUBACK of one QoS 1 "fence" publish sent after the last message on the
same path, so queued-but-unsent messages are not counted as done.

| scenario | path | apps | QoS | msgs/s (median) | runs | thingmux / direct |
|---|---|---:|---:|---:|---|---:|
| publish QoS 1, 1 app | direct | 1 | 1 | ${median[direct-q1]} | ${all[direct-q1]} | — |
| publish QoS 1, 1 app | thingmux | 1 | 1 | ${median[thingmux-q1-1]} | ${all[thingmux-q1-1]} | $(ratio "${median[thingmux-q1-1]}" "${median[direct-q1]}") |
| publish QoS 1, $apps_many apps | thingmux | $apps_many | 1 | ${median[thingmux-q1-many]} | ${all[thingmux-q1-many]} | $(ratio "${median[thingmux-q1-many]}" "${median[direct-q1]}") |
| publish QoS 0, 1 app | direct | 1 | 0 | ${median[direct-q0]} | ${all[direct-q0]} | — |
| publish QoS 0, 1 app | thingmux | 1 | 0 | ${median[thingmux-q0-1]} | ${all[thingmux-q0-1]} | $(ratio "${median[thingmux-q0-1]}" "${median[direct-q0]}") |

"direct" is one connection (the floor: only one app can hold the Thing's client ID) using the
project's own uplink (\`daemon/uplink\`, the same MQTT session code thingmuxd uses) with an
in-flight window of 90, and the 10-app thingmux row is compared with that single connection,
since direct cannot serve 10 apps at all. "thingmux" is N libthingmux clients in one process
(each with its own library thread) → thingmuxd → the same broker; each app keeps up to 1000
publishes awaiting their result (the daemon's default \`ipc.client_inflight\`), and the daemon
keeps 90 QoS 1 publishes in flight upstream. Rate limits are off for these runs
(\`limits.publishes_per_second: unlimited\`, \`limits.bytes_per_second: unlimited\`;
\`limits.inflight: 90\`).

Setup: machine with $(nproc) CPU(s), ${cpu:-unknown CPU}; $(uname -sr); mosquitto ${mosq:-unknown}
(mTLS, TLS 1.2+, persistence on, per-packet logging off: \`log_type error/warning/notice\` instead of the tests' \`all\`); build type
${build_type:-unknown} (\`${build_dir}/\`); commit $commit; run $(date -u '+%Y-%m-%d %H:%M UTC') with
\`${invocation}\`.
Broker, daemon and benchmark driver share these CPUs, so the thingmux path pays for one more
process on the same cores; on a machine with few cores this weighs more than on a large one.

## Not measured yet (issue 8 remains open)

- the **mosquitto bridge** path (apps → local mosquitto → bridge → upstream) and the
  thingmux/bridge ratios;
- inbound **fan-out** to 1, 10 and 100 local subscribers;
- round-trip **latency** percentiles (p50/p99/p99.9);
- **RSS** (idle, 100 clients / 1,000 subscriptions);
- **CPU seconds per 100k messages**;
- **time from start to READY**;
- **callgrind** instructions per message;
- PNG charts and the README entry.
EOF
echo "bench: wrote $out"
