#!/usr/bin/env bash
# Benchmarks thingmux against the two alternatives, with identical traffic in one run:
#   direct     the app connects straight to the upstream broker (the floor; one app only),
#   thingmux   apps (libthingmux) -> thingmuxd -> upstream,
#   mqtt-face  unmodified MQTT apps -> thingmuxd's MQTT face (its Unix socket) -> upstream,
#   bridge     the same MQTT apps -> a local mosquitto (loopback TCP) -> mosquitto bridge (mTLS,
#              cleansession false) -> upstream.
# The upstream is the AWS-like mosquitto of the tests (mTLS, made on the spot). Writes the tables
# to docs/benchmarks.md and charts to docs/img/ (gnuplot).
#
#   scripts/bench.sh [--runs R] [--messages N] [--fanout-messages N] [--latency-messages N]
#                    [--rate R] [--size BYTES] [--quick] [--no-callgrind] [--skip-build]
#                    [--no-one-cpu] [--out FILE] [--img DIR]
#   --runs R               runs per throughput figure, median kept (default 3)
#   --messages N           messages per throughput run (default 100000)
#   --fanout-messages N    messages per fan-out run (default 20000)
#   --latency-messages N   round trips per latency run, at --rate per second (default 10000 at 1000/s)
#   --size BYTES           payload size (default 200)
#   --quick                small numbers, one run each: checks that everything works (a few minutes)
#   --no-callgrind         skip the instructions-per-message figures (the slowest part)
#   --no-one-cpu           skip the second pass of the publish, fan-out and latency runs, in which
#                          every process (upstream broker, thingmuxd, bridge, apps) is pinned to one
#                          CPU with taskset, the shape of many small gateways
#   --skip-build           do not run scripts/bootstrap.sh --bench and scripts/build.sh
#   --out FILE, --img DIR  where the report and the charts go (default docs/benchmarks.md, docs/img)
#   --keep                 keep the work directory (configs, logs, results.tsv) and say where it is
#   --only LIST            measure only these, comma-separated: ready, memory, publish, fanout,
#                          latency, callgrind (default: all); the report shows the rest as "—"
# Uses $THINGMUX_BUILD_DIR (default build/) like scripts/build.sh. CTest's bench_smoke runs it with --quick.
set -euo pipefail
# shellcheck source=lib/help.sh
. "$(dirname "$0")/lib/help.sh"
cd "$(dirname "$0")/.."
root=$(pwd)
invocation="scripts/bench.sh${*:+ $*}"
PATH=$PATH:/usr/sbin:/sbin  # Debian installs mosquitto in /usr/sbin

runs=3
messages=100000
fanout_messages=20000
latency_messages=10000
rate=1000
size=200
callgrind=1
one_cpu=1
cg_messages=(2000 12000)  # the two callgrind runs
skip_build=0
keep=0
only=,ready,memory,publish,fanout,latency,callgrind,
out=docs/benchmarks.md
img=docs/img
usage() { script_help "$0"; }
while (($# > 0)); do
    case $1 in
        --runs) runs=${2:?}; shift 2 ;;
        --messages) messages=${2:?}; shift 2 ;;
        --fanout-messages) fanout_messages=${2:?}; shift 2 ;;
        --latency-messages) latency_messages=${2:?}; shift 2 ;;
        --rate) rate=${2:?}; shift 2 ;;
        --size) size=${2:?}; shift 2 ;;
        --quick) runs=1 messages=5000 fanout_messages=500 latency_messages=500 cg_messages=(500 2500); shift ;;
        --no-callgrind) callgrind=0; shift ;;
        --no-one-cpu) one_cpu=0; shift ;;
        --skip-build) skip_build=1; shift ;;
        --keep) keep=1; shift ;;
        --only) only=",${2:?},"; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --img) img=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$runs" "$messages" "$fanout_messages" "$latency_messages" "$rate" "$size"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$n' is not a positive number" >&2; exit 2; }
done

build_dir=${THINGMUX_BUILD_DIR:-build}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
if ((skip_build == 0)); then
    scripts/bootstrap.sh --bench
    scripts/build.sh -DTHINGMUX_BUILD_TESTS=ON
fi
bin=$build_dir/bin
for b in thingmuxd thingmux-bench thingmux-bench-ready; do
    [[ -x $bin/$b ]] || { echo "bench: $bin/$b missing: run scripts/build.sh -DTHINGMUX_BUILD_TESTS=ON (THINGMUX_BUILD_DIR=$build_dir)" >&2; exit 1; }
done
for tool in mosquitto gnuplot valgrind taskset; do
    [[ $tool == valgrind ]] && ((callgrind == 0)) && continue
    [[ $tool == taskset ]] && ((one_cpu == 0)) && continue
    command -v "$tool" >/dev/null || { echo "bench: $tool not found: run scripts/bootstrap.sh --bench" >&2; exit 1; }
done

broker=$root/tests/support/aws-like-broker
work=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-bench.XXXXXX")
results=$work/results.tsv
: >"$results"
daemon_pid= bridge_pid=
stop_pid() {  # PID: SIGTERM, wait
    [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_pid "$daemon_pid"
    stop_pid "$bridge_pid"
    "$broker" stop "$work/broker" >/dev/null 2>&1 || true
    if ((keep)); then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
want() { [[ $only == *",$1,"* ]]; }
for w in ${only//,/ }; do
    [[ ,ready,memory,publish,fanout,latency,callgrind, == *",$w,"* ]] || { echo "bench: --only: unknown part '$w'" >&2; exit 2; }
done
((callgrind)) || only=${only/,callgrind,/,}
step() { printf '\nbench: %s\n' "$*" >&2; }
# SECTION SCENARIO PATH VALUE UNIT; in the one-CPU pass the section is prefixed with "1cpu:".
pass=
record() { printf '%s%s\t%s\t%s\t%s\t%s\n' "$pass" "$@" >>"$results"; }

# --- the upstream broker -------------------------------------------------------------------------
# Each path has its own Thing, so thingmuxd, the bridge and the direct client never take over each
# other's client ID: gateway-01 (thingmuxd), bench-bridge (the bridge), bench-direct (direct).
step "starting the upstream (AWS-like) broker"
"$broker" pki "$work/broker" gateway-01 bench-bridge bench-direct >/dev/null
"$broker" start "$work/broker" >/dev/null
# The tests' broker logs every packet (log_type all), which would make it the bottleneck of
# every path; the benchmark keeps its notices only. sys_interval 1: the publish runs read the
# broker's count of received messages from $SYS.
sed -i 's/^log_type all$/log_type error\nlog_type warning\nlog_type notice\nsys_interval 1/' "$work/broker/mosquitto.conf"
"$broker" restart "$work/broker" >/dev/null
eval "$("$broker" env "$work/broker")"
upstream_pid=$(cat "$work/broker/mosquitto.pid")

# --- thingmuxd -----------------------------------------------------------------------------------
sock=$work/thingmux.sock
mqtt_sock=$work/mqtt.sock
write_daemon_config() {  # FILE SOCKET SPOOL MQTT_SOCKET
    cat >"$1" <<EOF
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
    subscribe: ['cmd/\${thing}/#', 'dt/\${thing}/rtt/#']
ipc:
  socket: $2
  mode: "0600"
  group: ""
  max_clients_per_uid: 1000
mqtt:
  socket: $4
spool:
  path: $3
EOF
}
write_daemon_config "$work/thingmux.yaml" "$sock" "$work/spool.db" "$mqtt_sock"
wait_until() {  # WHAT PID LOG COMMAND...: COMMAND succeeded within 60 s, or the script stops
    local what=$1 pid=$2 log=$3
    shift 3
    for _ in {1..600}; do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: $what; the log ($log):" >&2
    tail -n 20 "$log" >&2
    exit 1
}
wait_for_socket() { wait_until "no socket $1" "$2" "$3" test -S "$1"; }  # PATH PID LOG
wait_for_upstream() {  # LOG PID: until the thingmuxd writing LOG has its upstream session up
    wait_until "thingmuxd did not connect upstream" "$2" "$1" grep -q "thing gateway-01: connected" "$1"
}
start_daemon() {  # and wait until both its sockets listen and its upstream session is up
    : >"$work/thingmuxd.log"
    "$bin/thingmuxd" --config "$work/thingmux.yaml" --bus none >>"$work/thingmuxd.log" 2>&1 &
    daemon_pid=$!
    wait_for_socket "$sock" "$daemon_pid" "$work/thingmuxd.log"
    wait_for_socket "$mqtt_sock" "$daemon_pid" "$work/thingmuxd.log"
    wait_for_upstream "$work/thingmuxd.log" "$daemon_pid"
}

# --- the bridge: a local mosquitto as AWS's mosquitto-bridge guide sets it up --------------------
free_port() {
    local p
    for _ in {1..50}; do
        p=$((20000 + RANDOM % 20000))
        [[ -z $(ss -Hltn "sport = :$p") ]] && echo "$p" && return
    done
    echo "bench: no free port found" >&2
    exit 1
}
local_port=$(free_port)
mkdir -p "$work/bridge"
cat >"$work/bridge/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
listener $local_port 127.0.0.1
allow_anonymous true
max_inflight_messages 90
max_queued_messages 100000
set_tcp_nodelay true
persistence true
persistence_location $work/bridge/
log_dest file $work/bridge/mosquitto.log
log_type error
log_type warning
log_type notice

connection cloud
address $TMX_BROKER_HOST:$TMX_BROKER_PORT
remote_clientid bench-bridge
bridge_cafile $TMX_CA
bridge_certfile $TMX_CERT_BENCH_BRIDGE
bridge_keyfile $TMX_KEY_BENCH_BRIDGE
bridge_insecure false
bridge_protocol_version mqttv311
cleansession false
try_private false
notifications false
start_type automatic
topic dt/bench-bridge/bench/# out 1
topic cmd/bench-bridge/# in 1
topic # out 1 rtt-up/ dt/bench-bridge/rtt/
topic # in 1 rtt-down/ dt/bench-bridge/rtt/
EOF
start_bridge() {  # and wait until the bridge is up
    : >"$work/bridge/mosquitto.log"
    local bridge_connects
    bridge_connects=$(grep -c "as bench-bridge" "$work/broker/mosquitto.log" || true)
    mosquitto -c "$work/bridge/mosquitto.conf" >>"$work/bridge/stderr" 2>&1 &
    bridge_pid=$!
    for _ in {1..100}; do
        ss -Hltn "sport = :$local_port" | grep -q . &&
            (($(grep -c "as bench-bridge" "$work/broker/mosquitto.log") > bridge_connects)) && return 0
        kill -0 "$bridge_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: the bridge mosquitto did not start; its log:" >&2
    tail -n 20 "$work/bridge/mosquitto.log" "$work/bridge/stderr" >&2
    exit 1
}

# --- measurements --------------------------------------------------------------------------------
common=(--host "$TMX_BROKER_HOST" --port "$TMX_BROKER_PORT" --ca "$TMX_CA"
    --observer-cert "$TMX_CERT_OBSERVER" --observer-key "$TMX_KEY_OBSERVER" --inflight 90
    --direct-cert "$TMX_CERT_BENCH_DIRECT" --direct-key "$TMX_KEY_BENCH_DIRECT"
    --socket "$sock" --mqtt-socket "$mqtt_sock" --local-port "$local_port" --size "$size")
pinned=()  # taskset -c CPU in the one-CPU pass: the driver starts there
driver() { "${pinned[@]}" "$bin/thingmux-bench" "$@" "${common[@]}"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }   # KEY LINE
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # user + system CPU of PID, in clock ticks
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
middle_pid() { case $1 in thingmux | mqtt-face) echo "$daemon_pid" ;; bridge) echo "$bridge_pid" ;; *) echo "" ;; esac; }
hz=$(getconf CLK_TCK)

# publish LABEL PATH APPS QOS: median msgs/s of $runs runs, plus CPU of the process in the middle.
publish() {
    local label=$1 path=$2 apps=$3 qos=$4 line rates=() lost=0 mid cpu=0 t0 u0 upstream=0 driver_cpu=0
    mid=$(middle_pid "$path")
    for ((i = 1; i <= runs; i++)); do
        [[ -n $mid ]] && t0=$(ticks "$mid")
        u0=$(ticks "$upstream_pid")
        line=$(driver publish --path "$path" --apps "$apps" --qos "$qos" --messages "$messages") ||
            [[ $? == 1 ]] || { echo "bench: publish $label over $path failed" >&2; exit 1; }
        [[ -n $mid ]] && cpu=$((cpu + $(ticks "$mid") - t0))
        upstream=$((upstream + $(ticks "$upstream_pid") - u0))
        driver_cpu=$(awk -v a="$driver_cpu" -v b="$(field driver_cpu_s "$line")" 'BEGIN { print a + b }')
        echo "  $line" >&2
        rates+=("$(field msgs_per_s "$line")")
        lost=$((lost + $(field lost "$line")))
    done
    record throughput "$label" "$path" "$(printf '%s\n' "${rates[@]}" | median)" msg/s
    record throughput-runs "$label" "$path" "$(printf '%s\n' "${rates[@]}" | paste -sd ' ')" msg/s
    record throughput-lost "$label" "$path" "$lost" messages
    if [[ $label == "QoS 1, 1 app" ]]; then
        local n=$((messages * runs))
        [[ -n $mid ]] && record cpu "per 100k QoS 1 publishes: the process in the middle" "$path" \
            "$(awk -v t="$cpu" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t / hz / n * 100000 }')" s
        record cpu "per 100k QoS 1 publishes: all (apps + middle + upstream broker)" "$path" \
            "$(awk -v t=$((cpu + upstream)) -v d="$driver_cpu" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", (t / hz + d) / n * 100000 }')" s
    fi
}

fanout() {  # SUBSCRIBERS PATH
    local line
    line=$(driver fanout --path "$2" --apps "$1" --qos 1 --messages "$fanout_messages") ||
        [[ $? == 1 ]] || { echo "bench: fan-out to $1 over $2 failed" >&2; exit 1; }
    echo "  $line" >&2
    local label="$1 subscriber"; (($1 > 1)) && label+=s
    record fanout "$label" "$2" "$(field deliveries_per_s "$line")" deliveries/s
    record fanout-lost "$label" "$2" "$(field lost "$line")" deliveries
}

latency() {  # PATH
    local line p
    line=$(driver latency --path "$1" --rate "$rate" --messages "$latency_messages") ||
        [[ $? == 1 ]] || { echo "bench: latency over $1 failed" >&2; exit 1; }
    echo "  $line" >&2
    for p in p50 p99 p999; do
        record latency "${p/p999/p99.9}" "$1" "$(field "${p}_us" "$line")" µs
    done
    record latency-lost "round trips" "$1" "$(field lost "$line")" messages
}

# memory PID: "RSS PSS USS ANON" in KiB (USS = private pages; RSS also counts shared library
# pages; ANON = anonymous memory: heap, stacks).
memory() { awk '$1 == "Rss:" { r = $2 } $1 == "Pss:" { p = $2 } $1 ~ /^Private_(Clean|Dirty):$/ { u += $2 } $1 == "Anonymous:" { a = $2 } END { print r, p, u, a }' "/proc/$1/smaps_rollup"; }
record_memory() {  # SCENARIO PATH "RSS PSS USS ANON"
    local m=($3)
    record rss "$1" "$2" "${m[0]}" KiB
    record pss "$1" "$2" "${m[1]}" KiB
    record uss "$1" "$2" "${m[2]}" KiB
    record anon "$1" "$2" "${m[3]}" KiB
}
# idle_rss PATH PID: memory idle, and with 100 clients holding 10 subscriptions each. The first
# client runs code the process has not run before (credentials, hello, subscribe), whose pages
# fault in once per process; so the per-client figure is the growth from 1 to 100 clients, the
# same way on every path.
idle_rss() {
    local fifo=$work/idle.fifo before warm after
    before=$(memory "$2")
    record_memory "idle" "$1" "$before"
    rm -f "$fifo"
    mkfifo "$fifo"
    : >"$work/idle.out"
    driver idle --path "$1" --apps 100 --warm-up 1 --subscriptions 10 <"$fifo" >"$work/idle.out" &
    local idle_pid=$!
    exec 9>"$fifo"
    wait_idle() {  # WORD: until the driver printed a line starting with WORD
        for _ in {1..600}; do
            grep -q "^$1" "$work/idle.out" && return 0
            kill -0 "$idle_pid" 2>/dev/null || break
            sleep 0.1
        done
        echo "bench: idle clients over $path failed" >&2
        exit 1
    }
    local path=$1
    wait_idle warm
    warm=$(memory "$2")
    echo >&9
    wait_idle ready
    after=$(memory "$2")
    exec 9>&-
    wait "$idle_pid"
    record_memory "100 clients, 1000 subscriptions" "$1" "$after"
    record rss "per idle client" "$1" "$(awk -v a="${after%% *}" -v w="${warm%% *}" 'BEGIN { printf "%.1f", (a - w) / 99 }')" KiB
}

# --- time to READY (before anything else runs on these Things) -----------------------------------
if want ready; then
    step "time from start to READY (systemd notification), 5 starts each"
    line=$("$bin/thingmux-bench-ready" --runs 5 --status "connected" -- \
        "$bin/thingmuxd" --config "$work/thingmux.yaml" --bus none)
    echo "  thingmuxd: $line" >&2
    record ready "READY=1 (socket listening)" thingmux "$(field ready_ms "$line")" ms
    record ready "upstream connected" thingmux "$(field status_ms "$line")" ms
    line=$("$bin/thingmux-bench-ready" --runs 5 -- mosquitto -c "$work/bridge/mosquitto.conf")
    echo "  bridge mosquitto: $line" >&2
    record ready "READY=1 (socket listening)" bridge "$(field ready_ms "$line")" ms
fi

start_daemon
start_bridge

if want memory; then
    step "memory: idle, then 100 clients with 10 subscriptions each"
    idle_rss thingmux "$daemon_pid"
    # A fresh thingmuxd for the MQTT clients, so neither kind of client finds the other's heap.
    stop_pid "$daemon_pid"; daemon_pid=
    start_daemon
    idle_rss mqtt-face "$daemon_pid"
    idle_rss bridge "$bridge_pid"
fi

# The parts whose figures depend on time and on how the processes share the CPUs.
timed_parts() {
    if want publish; then
        step "publish throughput: $messages messages of $size bytes, median of $runs runs$1"
        for qos in 1 0; do
            for path in direct thingmux mqtt-face bridge; do publish "QoS $qos, 1 app" "$path" 1 "$qos"; done
            for path in thingmux mqtt-face bridge; do publish "QoS $qos, 10 apps" "$path" 10 "$qos"; done
        done
    fi
    if want fanout; then
        step "fan-out of one upstream stream: $fanout_messages messages, QoS 1$1"
        fanout 1 direct
        for n in 1 10 100; do
            for path in thingmux mqtt-face bridge; do fanout "$n" "$path"; done
        done
    fi
    if want latency; then
        step "round-trip latency: $latency_messages messages at $rate/s, QoS 1$1"
        for path in direct thingmux mqtt-face bridge; do latency "$path"; done
    fi
}
timed_parts ""
# pin CPUS: every thread of every process of the run, now and the threads they start later.
pin() {
    local pid
    for pid in "$upstream_pid" "$daemon_pid" "$bridge_pid"; do
        [[ -n $pid ]] && taskset -a -pc "$1" "$pid" >/dev/null
    done
}
timed=0
for w in publish fanout latency; do want "$w" && timed=1; done
if ((one_cpu && timed)); then
    all_cpus=$(taskset -pc $$ | sed 's/.*: //')
    one=${all_cpus%%[,-]*}
    pin "$one"
    pinned=(taskset -c "$one")
    pass=1cpu:
    timed_parts ", on CPU $one only"
    pass= pinned=()
    pin "$all_cpus"
fi

# --- instructions per message (valgrind callgrind: deterministic, unlike time) -------------------
# Instructions of the process in the middle, in user space, for N2 - N1 extra QoS 1 publishes
# from one app: the start, the connection and the shutdown cancel out. thingmuxd is driven once
# through its IPC socket (thingmux) and once through its MQTT face (mqtt-face).
ir_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
callgrind_per_message() {  # PATH: prints instructions per message
    local path=$1 n1=${cg_messages[0]} n2=${cg_messages[1]} ir=() n pid
    for n in $n1 $n2; do
        local cg=$work/callgrind-$path-$n.out  # kept with --keep: callgrind_annotate FILE
        local log=$work/callgrind-$path-$n.log
        : >"$log"  # before the process starts: the waits below read it at once
        if [[ $path == bridge ]]; then
            valgrind --tool=callgrind --callgrind-out-file="$cg" \
                mosquitto -c "$work/bridge/mosquitto.conf" >"$log" 2>&1 &
            pid=$!
            for _ in {1..300}; do ss -Hltn "sport = :$local_port" | grep -q . && break; sleep 0.1; done
        else
            valgrind --tool=callgrind --callgrind-out-file="$cg" \
                "$bin/thingmuxd" --config "$work/thingmux.yaml" --bus none >"$log" 2>&1 &
            pid=$!
            # An MQTT client is answered before the Thing is online (its publishes would go to
            # the spool): wait for the upstream session, as a libthingmux client does.
            wait_for_upstream "$log" "$pid"
        fi
        driver publish --path "$path" --apps 1 --qos 1 --messages "$n" --timeout 600 >/dev/null ||
            { echo "bench: publish under callgrind over $path failed; see $log" >&2; exit 1; }
        kill -TERM "$pid"
        wait "$pid" || true
        ir+=("$(ir_total "$cg")")
    done
    awk -v a="${ir[0]}" -v b="${ir[1]}" -v n=$((n2 - n1)) 'BEGIN { printf "%.0f", (b - a) / n }'
}
stop_pid "$daemon_pid"; daemon_pid=
stop_pid "$bridge_pid"; bridge_pid=
if want callgrind; then
    step "instructions per message under callgrind (slow: about three minutes)"
    for path in thingmux mqtt-face bridge; do
        per_message=$(callgrind_per_message "$path")  # an assignment, so that its failure stops the script
        record callgrind "instructions per QoS 1 publish (process in the middle)" "$path" "$per_message" instructions
    done
fi

# --- report --------------------------------------------------------------------------------------
step "writing $out and $img/"
mkdir -p "$(dirname "$out")" "$img"
scripts/bench-plot.sh "$results" "$img"
cp "$results" "$(dirname "$out")/benchmarks.tsv"

value() { awk -F'\t' -v s="$1" -v c="$2" -v p="$3" '$1 == s && $2 == c && $3 == p { print $4; exit }' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "—" }'; }
cell() { [[ -n $1 ]] && echo "$1" || echo "—"; }
# table SECTION TITLE...: one row per scenario, a column per path, then thingmux/direct,
# thingmux/bridge and mqtt-face/bridge.
table() {
    local section=$1 scenario d t m b
    echo "| $2 | direct | thingmux | mqtt-face | bridge | thingmux / direct | thingmux / bridge | mqtt-face / bridge |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    while IFS= read -r scenario; do
        d=$(value "$section" "$scenario" direct) t=$(value "$section" "$scenario" thingmux)
        m=$(value "$section" "$scenario" mqtt-face) b=$(value "$section" "$scenario" bridge)
        echo "| $scenario | $(cell "$d") | $(cell "$t") | $(cell "$m") | $(cell "$b") | $(ratio "$t" "$d") | $(ratio "$t" "$b") | $(ratio "$m" "$b") |"
    done < <(awk -F'\t' -v s="$section" '$1 == s && !seen[$2]++ { print $2 }' "$results")
}
losses=$(awk -F'\t' '$1 ~ /-lost$/ && $4 != 0 { printf "- %s, %s, %s: **%s %s lost**\n", $1, $2, $3, $4, $5 }' "$results")

# Goals of issues 8 and 20, judged on this run.
goal() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN { if (v == "") print "not measured"; else if ((op == "ge" && v >= lim) || (op == "le" && v <= lim)) print "met"; else print "**not met**" }'; }
# worst_ratio SECTION REFERENCE PASS: the lowest thingmux / REFERENCE ratio over the section's
# scenarios, as "RATIO (scenario)"; direct has one app and one subscriber, so every scenario is
# compared with its one-app (one-subscriber) figure.
worst_ratio() {
    local scenario t r d worst="" at=""
    while IFS= read -r scenario; do
        t=$(value "$3$1" "$scenario" thingmux)
        if [[ $2 == direct ]]; then
            case $1 in
                throughput) d=$(value "$3$1" "QoS ${scenario:4:1}, 1 app" direct) ;;
                *) d=$(value "$3$1" "$scenario" direct) ;;
            esac
        else
            d=$(value "$3$1" "$scenario" "$2")
        fi
        r=$(ratio "$t" "$d")
        [[ $r == — ]] && continue
        if [[ -z $worst ]] || awk -v r="$r" -v w="$worst" 'BEGIN { exit !(r < w) }'; then worst=$r at=$scenario; fi
    done < <(awk -F'\t' -v s="$3$1" '$1 == s && !seen[$2]++ { print $2 }' "$results")
    [[ -n $worst ]] && echo "$worst ($at)"
}
# lowest "R (a)" "R (b)": the one with the lower ratio; the empty one loses.
lowest() { if [[ -z $1 ]] || { [[ -n $2 ]] && awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { exit !(b < a) }'; }; then echo "$2"; else echo "$1"; fi; }
added() { awk -v t="$1" -v d="$2" 'BEGIN { if (t == "" || d == "") print ""; else printf "%.0f", t - d }'; }
# timed_goals PASS WHERE: the goals whose figures depend on time, judged on one pass.
timed_goals() {
    local direct bridge added50 added99
    direct=$(lowest "$(worst_ratio throughput direct "$1")" "$(worst_ratio fanout direct "$1")")
    bridge=$(lowest "$(worst_ratio throughput bridge "$1")" "$(worst_ratio fanout bridge "$1")")
    added50=$(added "$(value "${1}latency" p50 thingmux)" "$(value "${1}latency" p50 direct)")
    added99=$(added "$(value "${1}latency" p99 thingmux)" "$(value "${1}latency" p99 direct)")
    echo "| throughput ≥ 0.8 × direct, every scenario (publish, fan-out to 1 subscriber)$2 | $(cell "${direct:+worst thingmux / direct: $direct}") | $(goal "${direct%% *}" 0.8 ge) |"
    echo "| throughput ≥ the bridge, every scenario$2 | $(cell "${bridge:+worst thingmux / bridge: $bridge}") | $(goal "${bridge%% *}" 1 ge) |"
    echo "| added round trip over direct, p50 ≤ 50 µs at $rate msg/s$2 | $(cell "$added50") µs | $(goal "$added50" 50 le) |"
    echo "| added round trip over direct, p99 ≤ 250 µs at $rate msg/s$2 | $(cell "$added99") µs | $(goal "$added99" 250 le) |"
}
fan100=$(value fanout "100 subscribers" thingmux)
per_client=$(value rss "per idle client" thingmux)
instructions=$(value callgrind "instructions per QoS 1 publish (process in the middle)" thingmux)
# Idle memory against the bridge's mosquitto in the same run: the larger of the RSS and PSS ratios.
idle_vs_bridge=$(awk -v r="$(ratio "$(value rss idle thingmux)" "$(value rss idle bridge)")" \
    -v p="$(ratio "$(value pss idle thingmux)" "$(value pss idle bridge)")" \
    'BEGIN { if (r == "—" || p == "—") print ""; else print (r + 0 > p + 0 ? r : p) }')

# Goals of issue 15: the MQTT face ahead of the bridge in every figure both have.
# vs_bridge OP SECTIONS [SCENARIO_REGEX]: the mqtt-face / bridge ratio furthest from the goal
# (OP ge: higher is better, le: lower is better) over the comma-separated sections, as
# "RATIO<TAB>scenario" (prefixed with its section when there are several); nothing when no
# figure of both paths was measured.
vs_bridge() {
    awk -F'\t' -v op="$1" -v sections=",$2," -v only="${3:-.}" '
        !index(sections, "," $1 ",") || $2 !~ only || $4 !~ /^[0-9.eE+-]+$/ { next }
        $3 == "mqtt-face" { m[$1 FS $2] = $4 + 0 }
        $3 == "bridge" { b[$1 FS $2] = $4 + 0 }
        END {
            for (k in m) {
                if (!(k in b) || b[k] <= 0) continue
                r = m[k] / b[k]
                if (w == "" || (op == "ge" ? r < w : r > w)) { w = r; at = k }
            }
            if (w == "") exit
            split(at, p, FS)
            printf "%.2f\t%s%s\n", w, (sections ~ /,.*,.*,/ ? p[1] ": " : ""), p[2]
        }' "$results"
}
face_goals=() face_met=0 face_judged=0
face_goal() {  # TEXT OP SECTIONS [SCENARIO_REGEX]: one row of the goals table
    local worst verdict
    worst=$(vs_bridge "$2" "$3" "${4:-}")
    verdict=$(goal "${worst%%$'\t'*}" 1 "$2")
    [[ -n $worst ]] && face_judged=$((face_judged + 1))
    [[ $verdict == met ]] && face_met=$((face_met + 1))
    face_goals+=("| $1 | $([[ -n $worst ]] && echo "worst mqtt-face / bridge: ${worst%%$'\t'*} (${worst#*$'\t'})" || echo "—") | $verdict |")
}
face_goal "mqtt-face throughput ≥ the bridge, every scenario" ge throughput
face_goal "mqtt-face fan-out ≥ the bridge, every scenario" ge fanout
face_goal "mqtt-face round trip ≤ the bridge, every percentile" le latency
face_goal "thingmuxd with 100 idle MQTT clients ≤ the bridge's mosquitto with 100 (RSS, PSS, per client)" le rss,pss "clients|per idle client"
face_goal "mqtt-face CPU per message ≤ the bridge (the process in the middle; all processes)" le cpu
face_goal "mqtt-face instructions per QoS 1 publish ≤ the bridge" le callgrind
face_summary="$face_met of $face_judged measured goals met"
if ((face_judged == 0)); then face_overall="not measured"
elif ((face_met < face_judged)); then face_overall="**not met**"
elif ((face_judged < ${#face_goals[@]})); then face_overall="met where measured"
else face_overall=met
fi

goal_rows=$(timed_goals "" "")
((one_cpu)) && goal_rows+=$'\n'$(timed_goals 1cpu: ", **on one CPU**")

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mosq=$(mosquitto -h 2>/dev/null | sed -n '1s/^mosquitto version //p' || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
# Build type None is scripts/build.sh's default: the Debian package's compiler flags.
[[ $build_type == None ]] && build_type="None with the Debian package's flags (\`$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p' "$build_dir/CMakeCache.txt" | sed 's/ -ffile-prefix-map=[^ ]*//')\`)"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
img_rel=$(realpath --relative-to="$(dirname "$out")" "$img")

cat >"$out" <<EOF
# Benchmarks

thingmux against the two things a gateway would otherwise run, measured in the same run with
identical traffic:

- **direct**: the app holds the Thing's mTLS session itself (the floor; only one app can,
  since the client ID is the Thing name);
- **thingmux**: apps (libthingmux) → \`thingmuxd\` → upstream;
- **mqtt-face**: unmodified MQTT apps → \`thingmuxd\`'s MQTT face (its Unix socket,
  \`docs/local-mqtt.md\`) → upstream;
- **bridge**: the same MQTT apps → a local mosquitto (plain MQTT on loopback) → mosquitto
  bridge (mTLS, MQTT 3.1.1, \`cleansession false\`, as in AWS's mosquitto bridge guide) →
  upstream.

The mqtt-face and bridge apps run the same MQTT 5 client code (the project's own session, which
the other paths and the cloud side use too); they differ only in the socket they connect to, so
those two columns compare thingmuxd's face with mosquitto and its bridge.

The upstream is the tests' AWS-like mosquitto (\`tests/support/aws-like-broker\`: mTLS, ACL per
Thing, persistence) with per-packet logging off. Where the time goes, and what changed to get
these figures: \`docs/performance.md\`. Reproduce with one command:
\`scripts/bench.sh\` (it installs what it needs with \`scripts/bootstrap.sh --bench\`, builds, runs
everything and rewrites this file, \`docs/benchmarks.tsv\` and the charts in \`docs/img/\`).

## Goals (issues 8, 15 and 20), judged on this run

| goal | this run | |
|---|---|---|
$goal_rows
| fan-out to 100 subscribers ≥ 500k deliveries/s | $(cell "$fan100") | $(goal "$fan100" 500000 ge) |
| idle RSS and PSS ≤ the bridge's mosquitto | RSS $(cell "$(value rss idle thingmux)") vs $(cell "$(value rss idle bridge)") KiB, PSS $(cell "$(value pss idle thingmux)") vs $(cell "$(value pss idle bridge)") KiB | $(goal "$idle_vs_bridge" 1 le) |
| ≤ 2 KiB per connected idle client | $(cell "$per_client") KiB | $(goal "$per_client" 2 le) |
| instructions per QoS 1 publish in thingmuxd ≤ 11k | $(cell "$instructions") (mqtt-face $(cell "$(value callgrind "instructions per QoS 1 publish (process in the middle)" mqtt-face)")) | $(goal "$instructions" 11000 le) |
| **mqtt-face ≥ bridge, every figure** | $face_summary | $face_overall |
$(printf '%s\n' "${face_goals[@]}")

## Publish throughput

$messages messages of $size bytes per run, msgs/s, median of $runs run(s); the runs are in
\`docs/benchmarks.tsv\`. The clock starts when every client is connected and stops when the cloud
side has received a QoS 1 "fence" that each app publishes after all its messages completed, so
every path is timed to delivery at the upstream broker (a bridge's local PUBACK says nothing about
the cloud). The upstream broker's own count (\`\$SYS/broker/publish/messages/received\`) then
checks that all of them arrived. Each app keeps up to 1000 publishes awaiting their result; every
MQTT session keeps up to 90 QoS 1 publishes in flight (thingmuxd's \`limits.inflight\`, the
bridge's \`max_inflight_messages\`, and each MQTT app's own window, within the face's
\`mqtt.receive_maximum\` of 100). The 10-app rows compare with the one direct connection,
since direct cannot serve 10 apps. Rate limits are off (\`limits.publishes_per_second\` and
\`limits.bytes_per_second: unlimited\`) so the figures show the software, not the shaper.

$(table throughput scenario)

![publish throughput]($img_rel/bench-throughput.png)

## Inbound fan-out

The cloud side publishes $fanout_messages QoS 1 messages of $size bytes to one command topic; N
local apps subscribe to it (QoS 1). Deliveries/s = messages received by all subscribers ÷ time from
the first publish to the last delivery. Direct has one subscriber only.

$(table fanout "subscribers (deliveries/s)")

![fan-out]($img_rel/bench-fanout.png)

## Round-trip latency

One app subscribes to a topic and publishes QoS 1 messages of $size bytes to it at $rate/s
($latency_messages messages, the first second not counted); round trip = from the publish call to
the delivery back from the upstream broker, µs. thingmuxd never hands a local publish to a
local subscriber itself, so thingmux and mqtt-face apps publish to the topic they subscribe
to. The bridge maps \`rtt-up/#\` out and the same remote topic back in as \`rtt-down/#\`, since
it would otherwise hand the local copy straight back without a trip to the cloud.

$(table latency "percentile (µs)")

![latency]($img_rel/bench-latency.png)

## Memory, CPU, start-up

Memory of the process in the middle (thingmuxd, or the bridge's mosquitto), from
\`/proc/PID/smaps_rollup\`: RSS counts every resident page it maps, including shared libraries
that other processes use too (libcrypto alone is about 4 MiB); PSS divides shared pages among
the processes that map them; USS is the private part, what stopping the process would free
(it includes library pages that no other running process happens to map, so it drops when
another program using the same libraries starts); anonymous memory is what the process
allocated itself (heap, stacks).
Idle is right after start with the upstream connected, then with 100 clients holding 10 subscriptions each (the
same 10 filters, so 10 go upstream; AWS IoT Core allows 50 per connection): libthingmux clients
(thingmux), then, in a thingmuxd started afresh, MQTT clients on its MQTT face (mqtt-face),
and MQTT clients of the bridge's mosquitto (bridge). Per idle client = RSS growth from the first
client to the hundredth, ÷ 99: the first client runs code the process had not run yet, whose
pages are read in once per process, not per client. CPU = user + system
time of that process during the QoS 1 single-app publish runs, per 100k messages, and of
every process involved (the driver's clients, the process in the middle, the upstream broker). READY =
time from exec to \`READY=1\` on \`\$NOTIFY_SOCKET\` (both send it; 5 starts, median), and for
thingmuxd also to the first status saying the upstream is connected; thingmuxd's row is under
thingmux, whose process also serves mqtt-face.

$(table rss "RSS (KiB)")

$(table pss "PSS (KiB)")

$(table uss "USS, private (KiB)")

$(table anon "anonymous: heap, stacks (KiB)")

$(table cpu "CPU (s)")

$(table ready "start (ms)")

## On one CPU

$(if ((one_cpu)) && grep -q '^1cpu:' "$results"; then
    echo "The publish, fan-out and latency runs again, with every process of the run (the upstream broker,"
    echo "thingmuxd, the bridge's mosquitto and the driver's apps) pinned to one CPU with" '`taskset`: the'
    echo "shape of a small single-core gateway, where the process in the middle takes its CPU time"
    echo "from the broker and the apps instead of running beside them. Same traffic as above."
    echo
    table 1cpu:throughput "publish (msgs/s)"
    echo
    table 1cpu:fanout "subscribers (deliveries/s)"
    echo
    table 1cpu:latency "percentile (µs)"
    echo
    table 1cpu:cpu "CPU (s)"
else
    echo 'Not measured in this run (`--no-one-cpu`).'
fi)

## Instructions per message

$(if want callgrind; then
    echo "User-space instructions (valgrind callgrind, deterministic) of the process in the middle per QoS 1"
    echo "publish from one app: the difference between runs of ${cg_messages[1]} and ${cg_messages[0]} messages, divided by"
    echo "the difference in messages, so start, connection and shutdown cancel out. Kernel time (system"
    echo "calls) is not included."
    echo
    table callgrind "per message"
else
    echo "Not measured in this run."
fi)

## Losses

$(if [[ -n $losses ]]; then echo "$losses"; else echo "None: every path delivered every message in every run."; fi)

## Set-up of this run

$(nproc) CPU(s), ${cpu_model:-unknown CPU}; $(uname -sr); mosquitto ${mosq:-unknown}; build type
${build_type:-unknown}; commit $commit; $(date -u '+%Y-%m-%d %H:%M UTC');
\`${invocation}\`. The upstream broker, the process in the middle and the benchmark driver share
these CPUs (the driver runs every client on one thread for every path), so on a machine with few
cores the middle process competes with the broker it talks to; in the one-CPU pass all of them
share CPU $(taskset -pc $$ | sed 's/.*: //; s/[,-].*//').
EOF
echo "bench: wrote $out, $(dirname "$out")/benchmarks.tsv and $img/*.png" >&2
