#!/usr/bin/env bash
# The thingmux demo on a fresh Debian 12 machine: installs dependencies, builds, starts a local
# AWS-IoT-like mosquitto (mTLS, PKI made on the spot), shows the client-ID takeover problem, then
# holds the Thing's session with the thingmux uplink over MQTT 5 and 3.1.1.
#   THINGMUX_DEMO_KEEP=1  leave the broker running at the end
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh

broker=tests/support/aws-like-broker
dir=$(mktemp -d /tmp/thingmux-demo.XXXXXX)
cleanup() {
  [ -n "${sub_pid:-}" ] && kill "$sub_pid" 2>/dev/null || true
  if [ "${THINGMUX_DEMO_KEEP:-0}" = 1 ]; then
    echo "broker left running: eval \"\$($broker env $dir)\"; stop it with: $broker stop $dir"
  else
    "$broker" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting an AWS-IoT-like broker (mosquitto, mTLS, Thing-scoped ACL) in $dir"
"$broker" start "$dir" >/dev/null
eval "$("$broker" env "$dir")"
echo "broker on $TMX_BROKER_HOST:$TMX_BROKER_PORT; Thing gateway-01 has certificate $TMX_CERT_GATEWAY_01"
mtls=(-h "$TMX_BROKER_HOST" -p "$TMX_BROKER_PORT" --cafile "$TMX_CA")

step "The problem: two processes on the device use the Thing's client ID"
mosquitto_sub "${mtls[@]}" --cert "$TMX_CERT_GATEWAY_01" --key "$TMX_KEY_GATEWAY_01" -i gateway-01 -c -q 1 \
  -t 'cmd/gateway-01/#' -v > "$dir/app1.out" 2>&1 &
sub_pid=$!
for _ in $(seq 100); do grep -q "Received SUBSCRIBE from gateway-01" "$TMX_BROKER_LOG" && break; sleep 0.1; done
mosquitto_pub "${mtls[@]}" --cert "$TMX_CERT_GATEWAY_01" --key "$TMX_KEY_GATEWAY_01" -i gateway-01 -q 1 \
  -t cmd/gateway-01/reboot -m now
grep -m1 "already connected, closing old connection" "$TMX_BROKER_LOG" | sed 's/^/broker log: /'
kill "$sub_pid" 2>/dev/null; wait "$sub_pid" 2>/dev/null || true; sub_pid=
echo "app 1 (the subscriber) was kicked off when app 2 connected with the same client ID."

for protocol in mqtt5 mqtt311; do
  step "thingmux uplink as gateway-01 over $protocol: mTLS, subscribe, 100 QoS 1 messages, receive them back"
  build/bin/thingmux-probe --host "$TMX_BROKER_HOST" --port "$TMX_BROKER_PORT" --thing gateway-01 \
    --ca "$TMX_CA" --cert "$TMX_CERT_GATEWAY_01" --key "$TMX_KEY_GATEWAY_01" \
    --protocol "$protocol" --count 100 --topic dt/gateway-01/demo
done

step "Errors a misconfigured device gets"
for case in "wrong CA file:--ca $TMX_OTHER_CA --cert $TMX_CERT_GATEWAY_01 --key $TMX_KEY_GATEWAY_01" \
            "expired certificate:--ca $TMX_CA --cert $TMX_CERT_GATEWAY_EXPIRED --key $TMX_KEY_GATEWAY_EXPIRED"; do
  echo "-- ${case%%:*}"
  # shellcheck disable=SC2086
  build/bin/thingmux-probe --host "$TMX_BROKER_HOST" --port "$TMX_BROKER_PORT" --thing gateway-01 ${case#*:} \
    --timeout 10 --count 1 2>&1 | grep -E 'error' | head -2 || true
done

step "Done"
echo "Next (issue 2): thingmuxd shares this one session among many local apps."
