#!/usr/bin/env bash
# The thingmux demo on a fresh Debian 12 machine: installs dependencies, builds, starts a local
# AWS-IoT-like mosquitto (mTLS, PKI made on the spot), shows the client-ID takeover problem, then
# runs thingmuxd and several apps that share the Thing's one session.
# It checks what everyone received and exits 1 when a count is wrong.
#   scripts/demo.sh [--arch ARCH]
#   --arch arm64|armhf: the thingmux programs are those scripts/cross-test.sh built for ARCH in
#                       build-ARCH/, run under qemu-user; the broker and MQTT clients are this
#                       machine's. Nothing is installed or built.
#   THINGMUX_DEMO_KEEP=1  leave the broker and thingmuxd running at the end
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/help.sh
. scripts/lib/help.sh
run=()
bin=build/bin
case ${1:-} in
  "") bash scripts/bootstrap.sh
      bash scripts/build.sh ;;
  --arch)
    # shellcheck source=lib/cross.sh
    . scripts/lib/cross.sh
    cross_arch "${2:-}" || exit 2
    cross_require || exit 1
    bin=build-$cross_name/bin
    run=("${cross_runner[@]}")
    [ -x "$bin/thingmuxd" ] || { echo "demo: no $bin/thingmuxd; run scripts/cross-test.sh $cross_name first" >&2; exit 1; } ;;
  -h | --help) script_help "$0"; exit 0 ;;
  *) echo "demo: unknown argument '$1' (use --arch ARCH, --help or nothing)" >&2; exit 2 ;;
esac

broker=tests/support/aws-like-broker
dir=$(mktemp -d /tmp/thingmux-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "${THINGMUX_DEMO_KEEP:-0}" = 1 ]; then
    echo "left running: broker ($broker env $dir) and thingmuxd (socket $dir/thingmux.sock)"
  else
    [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    "$broker" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() {  # FILE PATTERN: up to 10 s
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}

step "Starting an AWS-IoT-like broker (mosquitto, mTLS, Thing-scoped ACL) in $dir"
"$broker" start "$dir" >/dev/null
eval "$("$broker" env "$dir")"
echo "broker on $TMX_BROKER_HOST:$TMX_BROKER_PORT; Thing gateway-01 has certificate $TMX_CERT_GATEWAY_01"
mtls=(-h "$TMX_BROKER_HOST" -p "$TMX_BROKER_PORT" --cafile "$TMX_CA")
thing=(--cert "$TMX_CERT_GATEWAY_01" --key "$TMX_KEY_GATEWAY_01" -i gateway-01)
cloud=(--cert "$TMX_CERT_OBSERVER" --key "$TMX_KEY_OBSERVER")

step "The problem: two processes on the device use the Thing's client ID"
mosquitto_sub "${mtls[@]}" "${thing[@]}" -c -q 1 -t 'cmd/gateway-01/#' -v > "$dir/app1.out" 2>&1 &
sub_pid=$!
wait_for "$TMX_BROKER_LOG" "Received SUBSCRIBE from gateway-01"
mosquitto_pub "${mtls[@]}" "${thing[@]}" -q 1 -t dt/gateway-01/temperature -m 21.5
grep -m1 "already connected, closing old connection" "$TMX_BROKER_LOG" | sed 's/^/broker log: /'
kill "$sub_pid" 2>/dev/null; wait "$sub_pid" 2>/dev/null || true
echo "app 1 (a subscriber) was kicked off the broker the moment app 2 connected with the same client ID."
log_start=$(($(wc -l < "$TMX_BROKER_LOG") + 1))  # count only what happens from here on

step "The fix: thingmuxd holds the one session; apps share it through $dir/thingmux.sock and $dir/mqtt.sock"
{
  echo "# One Thing, and what the apps of this user ($(id -un)) may do with it."
  "$broker" things-yaml "$dir"
  cat <<EOF
apps:
  - name: demo-apps
    match: { uid: $(id -u) }
    publish: ['dt/\${thing}/#']
    subscribe: ['cmd/\${thing}/#']
ipc:
  socket: $dir/thingmux.sock
  mode: "0660"
  group: ""
spool:
  path: $dir/spool.db
EOF
} > "$dir/thingmux.yaml"
sed 's/^/thingmux.yaml: /' "$dir/thingmux.yaml"
"${run[@]}" "$bin/thingmuxd" --check-config --config "$dir/thingmux.yaml"
"${run[@]}" "$bin/thingmuxd" --config "$dir/thingmux.yaml" > "$dir/thingmuxd.log" 2>&1 &
daemon_pid=$!
wait_for "$dir/thingmuxd.log" "connected as gateway-01"
sed 's/^/thingmuxd: /' "$dir/thingmuxd.log"
export THINGMUX_SOCKET=$dir/thingmux.sock

# The cloud side watches the Thing's telemetry.
# Each receiver stops after 60 s at the latest, so that a lost message fails the checks at the end
# instead of leaving the demo waiting.
bounded=(timeout 60)
"${bounded[@]}" mosquitto_sub "${mtls[@]}" "${cloud[@]}" -i cloud-watcher -q 1 -t 'dt/gateway-01/#' -v -C 7 > "$dir/cloud.out" 2>&1 &
pids+=($!)
wait_for "$TMX_BROKER_LOG" "Received SUBSCRIBE from cloud-watcher"

# Three apps on the device want the Thing's commands: two use libthingmux, the third is an
# unmodified MQTT client that still uses the Thing's name as its client ID, as the IoT policy
# forced it to; on thingmuxd's MQTT socket that takes over nothing.
"${bounded[@]}" "${run[@]}" "$bin/thingmux-example-controller" --count 3 > "$dir/controller.out" 2>&1 &
pids+=($!)
"${bounded[@]}" "${run[@]}" "$bin/thingmuxctl" sub -t 'cmd/gateway-01/#' -q 1 -v -C 3 > "$dir/ctl-sub.out" 2>&1 &
pids+=($!)
"${bounded[@]}" mosquitto_sub --unix "$dir/mqtt.sock" -i gateway-01 -V 5 -q 1 -t 'cmd/gateway-01/#' -v -C 3 > "$dir/mqtt-sub.out" 2>&1 &
pids+=($!)
wait_for "$dir/thingmuxd.log" "app 'thingmuxctl'"
wait_for "$dir/thingmuxd.log" "app 'thingmux-example-controller'"
wait_for "$dir/thingmuxd.log" "MQTT client .* connected: client id 'gateway-01'"

# One app publishes telemetry, a shell script publishes too, the cloud sends commands.
"${run[@]}" "$bin/thingmux-example-sensor" --count 5 --interval 100 | sed 's/^/sensor app: /'
"${run[@]}" "$bin/thingmuxctl" pub -q 1 -t dt/gateway-01/status -m '{"door":"closed"}' && echo "thingmuxctl pub: accepted by the broker"
# An unmodified MQTT client publishes too, with the Thing's name as client ID: its PUBACK comes
# once the broker acknowledged the message (RC:16 is MQTT 5's "no matching subscribers").
mosquitto_pub --unix "$dir/mqtt.sock" -i gateway-01 -V 5 -q 1 -d -t dt/gateway-01/power -m '{"volts":24.1}' |
  grep -E "PUBACK" | sed 's/^/mosquitto_pub (MQTT face): /' 
echo "An app may only use the topics its rule grants; publishing a command is refused locally:"
# thingmuxctl names itself and the subcommand on stderr ("thingmuxctl pub: refused: ...").
"${run[@]}" "$bin/thingmuxctl" pub -q 1 -t cmd/gateway-01/actuator -m reboot 2>&1 || true
printf 'open-valve\nclose-valve\nreboot\n' |
  mosquitto_pub "${mtls[@]}" "${cloud[@]}" -i cloud-commander -q 1 -l -t cmd/gateway-01/actuator
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

step "What everyone received"
sed 's/^/cloud (telemetry): /' "$dir/cloud.out"
sed 's/^/controller app:    /' "$dir/controller.out"
sed 's/^/thingmuxctl sub:   /' "$dir/ctl-sub.out"
sed 's/^/mosquitto_sub:     /' "$dir/mqtt-sub.out"
"${run[@]}" "$bin/thingmuxctl" status | sed 's/^/thingmuxctl status: /'
connections=$(tail -n +"$log_start" "$TMX_BROKER_LOG" | grep -c "New client connected .* as gateway-01 (" || true)
subs=$(tail -n +"$log_start" "$TMX_BROKER_LOG" | grep -c "Received SUBSCRIBE from gateway-01" || true)
echo
echo "The broker saw gateway-01 connect $connections time(s) and subscribe $subs time(s) for three local subscribers:"
echo "one session, one upstream subscription, no takeovers."

step "Stopping thingmuxd (SIGTERM: finish in-flight messages, DISCONNECT, exit 0)"
kill -TERM "$daemon_pid"
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
echo "thingmuxd exited with status $daemon_rc"; daemon_pid=
tail -n 3 "$dir/thingmuxd.log" | sed 's/^/thingmuxd: /'

# What the demo shows, checked: every message reached every receiver once, over one session.
failed=()
expect() {  # expect WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || failed+=("$1: $2, expected $3")
}
expect "telemetry lines the cloud received" "$(wc -l < "$dir/cloud.out")" 7
expect "commands the controller app received" "$(grep -c '^cmd/gateway-01/actuator ' "$dir/controller.out" || true)" 3
expect "commands thingmuxctl sub received" "$(grep -c '^cmd/gateway-01/actuator ' "$dir/ctl-sub.out" || true)" 3
expect "commands mosquitto_sub received" "$(grep -c '^cmd/gateway-01/actuator ' "$dir/mqtt-sub.out" || true)" 3
expect "connections of gateway-01 to the broker" "$connections" 1
expect "SUBSCRIBEs of gateway-01 to the broker" "$subs" 1
expect "thingmuxd's exit status" "$daemon_rc" 0
if [ ${#failed[@]} -gt 0 ]; then
  printf 'demo: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo
echo "demo: checked: 7 telemetry messages in the cloud, 3 commands at each of 3 local subscribers, 1 connection, 1 SUBSCRIBE${run:+ (thingmux programs for $cross_name under $cross_qemu)}"
