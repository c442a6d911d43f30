#!/usr/bin/env bash
# The Debian packages under a real systemd: boots this machine's own root file system as a
# systemd-nspawn container (over a throwaway tmpfs overlay, in a private mount namespace, with a
# private network holding a test broker) and, inside, does what a gateway builder does:
#   - installs the .debs (apt-get, offline: their dependencies are those of this machine's root);
#     nothing is enabled or started by the installation itself;
#   - puts a test PKI and a configuration in place; `thingmuxd --check-config` accepts it;
#   - systemctl enable --now thingmuxd.socket thingmuxd.service; thingmuxctl status: connected;
#   - 5 messages each way through the daemon (thingmuxctl sub/pub against the broker's own
#     clients), counted, and the Thing's counters read with busctl;
#   - journalctl -u thingmuxd shows the start; systemctl reload applies a changed app rule;
#   - watchdog: SIGSTOP the daemon, systemd kills and restarts it (WatchdogSec=3s drop-in);
#   - upgrade (dpkg -i of the same packages): the service restarts, the socket unit does not,
#     and a running `thingmuxctl sub` gets its messages again;
#   - apt-get purge: units, enablement links, programs, configuration and sockets gone; the
#     system user stays (Debian does not remove system users).
# The container is always shut down and nothing stays mounted. Bounded: about 1 minute, 4 at most.
# Exits 77 (CTest's skip code) with the reason when the machine cannot run it: not root, a
# missing program, no overlayfs, no mount namespace, or a container that does not boot.
#
#   bash packaging/test-systemd.sh --debs DIR    DIR holds thingmuxd, libthingmux2 and
#                                                libthingmux-dev of this tree's version
# shellcheck disable=SC2016  # ${thing} and dpkg-query's ${Package} are for the YAML and dpkg
set -euo pipefail

readonly budget_s=220          # the whole run, container included; then 15 s to stop (4 min in all)
readonly boot_timeout_s=60
readonly thing=gateway-01
readonly thing_path=/org/thingmux/Thingmux1/thing/gateway_2d01  # docs/dbus.md's escaping
readonly inside=/var/tmp/thingmux-test   # the test's files inside the container
readonly broker=$inside/broker           # tests/support/aws-like-broker's directory
readonly broker_port=8883                # the container has a network of its own

skip() { echo "SKIP: test-systemd: $*"; exit 77; }
usage() { echo "usage: $0 --debs DIR" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
self=$repo/packaging/test-systemd.sh

# ---------------------------------------------------------------------------------------------
# Outer part, in the caller's mount namespace: can this machine run the test at all?
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" != --inner ]; then
  debs=
  while [ $# -gt 0 ]; do
    case $1 in
      --debs) [ $# -ge 2 ] || usage; debs=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  [ -n "$debs" ] || usage
  [ -d "$debs" ] || { echo "FAIL: $debs is not a directory" >&2; exit 1; }
  debs=$(cd "$debs" && pwd)

  [ "$(id -u)" = 0 ] || skip "needs root (it mounts an overlay in a private mount namespace and runs systemd-nspawn)"
  PATH=$PATH:/usr/sbin:/sbin
  for need in systemd-nspawn:systemd-container nsenter:util-linux unshare:util-linux timeout:coreutils \
              dpkg-deb:dpkg openssl:openssl mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
              mosquitto_sub:mosquitto-clients busctl:systemd; do
    command -v "${need%%:*}" >/dev/null || skip "${need%%:*} not found (Debian package ${need#*:})"
  done
  case $(readlink -f /sbin/init 2>/dev/null) in
    */systemd) ;;
    *) skip "this root file system has no systemd to boot (/sbin/init is not systemd; package systemd-sysv)" ;;
  esac
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems || skip "the kernel has no overlayfs (modprobe overlay failed)"
  if ! err=$(unshare --mount true 2>&1); then
    skip "cannot create a mount namespace (unshare --mount: $err)"
  fi

  work=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-nspawn.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # Interrupted: the inner part shuts the container down, then the scratch directory goes.
  trap 'kill -TERM "$inner" 2>/dev/null; wait "$inner"; exit 143' INT TERM
  set +e
  # Every mount lives in this private namespace: gone with its last process, whatever happens.
  timeout --kill-after=15 "$budget_s" unshare --mount --propagation private -- bash "$self" --inner "$work" "$debs" &
  inner=$!
  wait "$inner"
  rc=$?
  set -e
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "FAIL: test-systemd did not finish within $budget_s s" >&2
    rc=1
  fi
  if grep -qF "$work" /proc/self/mountinfo; then
    echo "FAIL: something stayed mounted under $work" >&2
    rc=1
  fi
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inner part, in a private mount namespace.
# ---------------------------------------------------------------------------------------------
work=$2
debs=$3
PATH=$PATH:/usr/sbin:/sbin
started=$SECONDS
failures=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
note() { echo "  note: $*"; }
phase() { echo "== $* (t+$((SECONDS - started))s)"; }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
wait_until() {  # wait_until SECONDS COMMAND...: polls until the command succeeds; 1 on timeout
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
indent() { sed 's/^/  /'; }

# --- the packages --------------------------------------------------------------------------
version=$(sed -n 's/^project(thingmux VERSION \([0-9][0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
arch=$(dpkg --print-architecture)
packages=(libthingmux2 thingmuxd libthingmux-dev)
deb_names=()
for p in "${packages[@]}"; do
  f=${p}_${version}_${arch}.deb
  [ -f "$debs/$f" ] || { echo "FAIL: $debs/$f missing; packages there:" >&2; ls -1 "$debs" >&2; exit 1; }
  deb_names+=("$f")
done
deb_version=$(dpkg-deb -f "$debs/thingmuxd_${version}_${arch}.deb" Version)

# --- the container -------------------------------------------------------------------------
mnt=$work/mnt
root=$mnt/root
machine=thingmux-test-$$
console=$work/console.log
timeout_pid=
nspawn_pid=
init_pid=
bg_pids=()

ct() {  # ct COMMAND...: runs COMMAND in the container (all its namespaces), 30 s at most
  timeout --kill-after=5 "${ct_timeout:-30}" nsenter --target "$init_pid" --all -- \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
ct_bg() {  # ct_bg OUT ERR COMMAND...: starts COMMAND in the container, in the background
  local out=$1 err=$2; shift 2
  nsenter --target "$init_pid" --all -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 "$@" >"$out" 2>"$err" </dev/null &
  bg_pids+=($!)
  bg_pid=$!
}

diagnostics() {
  [ -n "$init_pid" ] && kill -0 "$init_pid" 2>/dev/null || return 0
  echo "--- diagnostics: systemctl status" >&2
  ct systemctl --no-pager --full status thingmuxd.socket thingmuxd.service 2>&1 | indent >&2 || true
  echo "--- diagnostics: journalctl -u thingmuxd (last 60 lines)" >&2
  ct journalctl --no-pager -u thingmuxd.service -u thingmuxd.socket -n 60 2>&1 | indent >&2 || true
  echo "--- diagnostics: broker log (last 20 lines)" >&2
  tail -n 20 "$root$broker/mosquitto.log" 2>/dev/null | indent >&2 || true
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ] && [ "$rc" != 77 ] || [ "$failures" -gt 0 ]; then diagnostics; fi
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$timeout_pid" ]; then
    # SIGTERM to nspawn (through timeout when nspawn is not known yet) asks the container's
    # systemd to power off (SIGRTMIN+3).
    kill -TERM "${nspawn_pid:-$timeout_pid}" 2>/dev/null || true
    if ! wait_until 20 bash -c "! kill -0 ${nspawn_pid:-$timeout_pid}"; then
      echo "  note: the container did not power off within 20 s; killing it" >&2
      kill -KILL "${nspawn_pid:-$timeout_pid}" 2>/dev/null || true
    fi
    wait "$timeout_pid" 2>/dev/null || true
  fi
  if mountpoint -q "$root"; then umount "$root" || umount -l "$root" || true; fi
  if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt" || true; fi
  if mountpoint -q /run/systemd/nspawn; then umount /run/systemd/nspawn || true; fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 143' INT TERM

# --- the container's root: an overlay of / on a tmpfs ---------------------------------------
phase "an overlay of / on a tmpfs"
mkdir -p "$mnt"
mount -t tmpfs -o mode=0700,size=2G thingmux-test "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
if ! err=$(mount -t overlay thingmux-test -o "lowerdir=/,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root" 2>&1); then
  skip "cannot mount an overlay over / on a tmpfs ($err)"
fi
# nspawn keeps per-machine state in /run/systemd/nspawn and refuses to clean it up where /run is
# no tmpfs ("Attempted to remove disk file system"); this one is private and goes with us.
mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=0755,size=16M thingmux-test /run/systemd/nspawn

# basic.target (sysinit, sockets with dbus.socket) without timers: apt-daily would take the dpkg
# lock. No man-db index update on installation (seconds, and nothing to test).
ln -sf /dev/null "$root/etc/systemd/system/timers.target"
rm -f "$root/var/lib/man-db/auto-update"
# A container image's policy-rc.d (exit 101) keeps maintainer scripts from starting, restarting
# and stopping services: the container is to behave like a gateway, which has none.
if [ -e "$root/usr/sbin/policy-rc.d" ]; then
  rm -f "$root/usr/sbin/policy-rc.d"
  note "this machine's /usr/sbin/policy-rc.d is removed in the container"
fi
# What a build installed on this machine by hand (cmake --install) would shadow the packages'
# units or meet their conffile: the container starts without it.
for leftover in etc/thingmux var/lib/thingmux etc/systemd/system/thingmuxd.service \
                etc/systemd/system/thingmuxd.socket etc/systemd/system/thingmuxd.service.d \
                usr/local/lib/systemd/system/thingmuxd.service usr/local/lib/systemd/system/thingmuxd.socket; do
  if [ -e "$root/$leftover" ]; then
    rm -rf "${root:?}/$leftover"
    note "this machine's /$leftover is removed in the container"
  fi
done
rm -rf "$root$inside"
mkdir -p "$root$inside/debs"
for f in "${deb_names[@]}"; do cp "$debs/$f" "$root$inside/debs/"; done
install -m 0755 "$repo/tests/support/aws-like-broker" "$root$inside/aws-like-broker"

# --- boot ------------------------------------------------------------------------------------
phase "booting $root with systemd-nspawn"
# --register=no --keep-unit: no machined and no host systemd needed. --private-network: the
# container has its own loopback, where the test broker listens on a fixed port.
timeout --kill-after=5 $((budget_s + 10)) systemd-nspawn --directory="$root" --boot --machine="$machine" \
  --register=no --keep-unit --link-journal=no --private-network --console=read-only \
  systemd.unit=basic.target >"$console" 2>&1 &
timeout_pid=$!
boot_deadline=$((SECONDS + boot_timeout_s))
until nspawn_pid=$(pgrep -P "$timeout_pid" -x systemd-nspawn) && init_pid=$(pgrep -P "$nspawn_pid" -x systemd); do
  if ! kill -0 "$timeout_pid" 2>/dev/null || [ "$SECONDS" -ge "$boot_deadline" ]; then
    tail -n 20 "$console" | indent
    init_pid=
    skip "systemd-nspawn did not start the container's systemd (its output above)"
  fi
  sleep 0.1
done
state=
until state=$(ct_timeout=10 ct systemctl is-system-running --wait 2>/dev/null) || [ "$state" = degraded ]; do
  if ! kill -0 "$nspawn_pid" 2>/dev/null || [ "$SECONDS" -ge "$boot_deadline" ]; then
    tail -n 20 "$console" | indent
    skip "the container's systemd did not finish booting basic.target within $boot_timeout_s s (state '${state:-none}'; its console above)"
  fi
  sleep 0.2
done
pass "the container booted basic.target in $((SECONDS - started)) s (systemd state: $state)"
[ "$state" = running ] || ct systemctl --no-pager --failed 2>&1 | indent

# --- the broker: tests/support/aws-like-broker's PKI and configuration ----------------------
phase "test broker"
ct "$inside/aws-like-broker" pki "$broker" "$thing" >/dev/null
ct "$inside/aws-like-broker" config "$broker" "$broker_port" >/dev/null
ct systemd-run --quiet --unit=thingmux-test-broker --property=Type=exec \
  /usr/sbin/mosquitto -c "$broker/mosquitto.conf"
observer=(-h localhost -p "$broker_port" --cafile "$broker/pki/ca.crt"
          --cert "$broker/pki/observer.crt" --key "$broker/pki/observer.key")
if ! wait_until 15 ct mosquitto_pub "${observer[@]}" -i probe-ready -t probe/ready -m 1 -q 1; then
  echo "FAIL: the test broker did not accept an mTLS connection within 15 s" >&2
  exit 1
fi
pass "mosquitto with mTLS listens on localhost:$broker_port in the container"

# --- installation ----------------------------------------------------------------------------
phase "installing ${deb_names[*]}"
mapfile -t preinstalled < <(ct dpkg-query -W -f '${db:Status-Status} ${Package}\n' "${packages[@]}" 2>/dev/null |
                             awk '$1 != "not-installed" {print $2}' || true)
if [ ${#preinstalled[@]} -gt 0 ]; then
  note "this machine has ${preinstalled[*]} installed; purging it in the container first"
  ct_timeout=90 ct apt-get purge -y "${preinstalled[@]}" >"$work/prepurge.log" 2>&1 ||
    { indent <"$work/prepurge.log"; exit 1; }
fi
deb_paths=()
for f in "${deb_names[@]}"; do deb_paths+=("$inside/debs/$f"); done
if ct_timeout=120 ct apt-get install -y --no-install-recommends "${deb_paths[@]}" >"$work/install.log" 2>&1; then
  pass "apt-get install of the three packages, offline"
else
  indent <"$work/install.log" >&2
  echo "FAIL: apt-get install" >&2
  exit 1
fi
for p in "${packages[@]}"; do
  check "$p $deb_version is installed" test "$(ct dpkg-query -W -f '${db:Status-Status} ${Version}' "$p")" = "installed $deb_version"
done
check "the installation leaves thingmuxd.service disabled" test "$(ct systemctl is-enabled thingmuxd.service)" = disabled
check "the installation starts neither unit" test "$(ct systemctl is-active thingmuxd.service thingmuxd.socket | sort -u)" = inactive
has_user() { ct getent passwd thingmux >/dev/null; }
check "the package created the system user thingmux" has_user

# --- configuration ---------------------------------------------------------------------------
phase "configuration"
ct install -m 0644 "$broker/pki/ca.crt" /etc/thingmux/test-ca.pem
ct install -m 0644 "$broker/pki/$thing.crt" "/etc/thingmux/$thing.cert.pem"
ct install -m 0640 -g thingmux "$broker/pki/$thing.key" "/etc/thingmux/$thing.private.key"
write_config() {  # write_config PUBLISH_FILTERS [EXTRA_APP_RULES]
  cat >"$root/etc/thingmux/thingmux.yaml" <<EOF
# Written by packaging/test-systemd.sh: the test broker in the container.
things:
  - name: $thing
    endpoint: localhost
    port: $broker_port
    protocol: mqtt5
    ca: /etc/thingmux/test-ca.pem
    cert: /etc/thingmux/$thing.cert.pem
    key: /etc/thingmux/$thing.private.key
    backoff: { base: 1s, cap: 2s }

apps:
  - name: package-test
    match: { user: root }
    publish: $1
    subscribe: ["cmd/\${thing}/#"]
${2:-}
EOF
}
write_config '["dt/${thing}/#"]'
if ct thingmuxd --check-config --config /etc/thingmux/thingmux.yaml >"$work/check.out" 2>&1; then
  pass "thingmuxd --check-config accepts the test configuration ($(tail -n 1 "$work/check.out"))"
else
  indent <"$work/check.out" >&2
  fail "thingmuxd --check-config refuses the test configuration"
fi

# --- enable and start --------------------------------------------------------------------------
phase "systemctl enable --now"
if ct_timeout=60 ct systemctl enable --now thingmuxd.socket thingmuxd.service >"$work/enable.log" 2>&1; then
  pass "systemctl enable --now thingmuxd.socket thingmuxd.service"
else
  indent <"$work/enable.log" >&2
  echo "FAIL: systemctl enable --now" >&2
  exit 1
fi
check "thingmuxd.service and thingmuxd.socket are active" \
  test "$(ct systemctl is-active thingmuxd.service thingmuxd.socket | sort -u)" = active
check "thingmuxd.service is enabled" test "$(ct systemctl is-enabled thingmuxd.service)" = enabled
connected() { ct thingmuxctl status 2>&1 | grep -qE '^uplink: +connected$'; }
if wait_until 20 connected; then
  pass "thingmuxctl status: connected"
else
  ct thingmuxctl status 2>&1 | indent >&2 || true
  echo "FAIL: thingmuxctl status does not say connected within 20 s" >&2
  exit 1
fi
ct thingmuxctl status | head -n 5 | indent
prop() {  # prop OBJECT INTERFACE PROPERTY: busctl's answer, e.g. s "connected"
  ct busctl get-property org.thingmux.Thingmux1 "$1" "org.thingmux.Thingmux1.$2" "$3"
}
check "busctl: Manager.Version is $version" test "$(prop /org/thingmux/Thingmux1 Manager Version)" = "s \"$version\""
check "busctl: Thing.State is connected" test "$(prop "$thing_path" Thing State)" = 's "connected"'

# --- journal ------------------------------------------------------------------------------------
journal() { ct journalctl --no-pager -o cat -u thingmuxd.service; }
journal_has() { journal | grep -qF -- "$1"; }
check "journalctl -u thingmuxd: systemd started the service" wait_until 5 journal_has "Started thingmuxd.service"
check "journalctl -u thingmuxd: thingmuxd $version took the socket systemd passed" \
  wait_until 5 journal_has "thingmuxd $version listening on the socket systemd passed"
check "journalctl -u thingmuxd: the Thing connected" wait_until 5 journal_has "thing $thing: connected as $thing"

# --- a round trip each way, counted ---------------------------------------------------------------
phase "publish and subscribe through the daemon"
upstream_has() { prop "$thing_path" Thing UpstreamSubscriptions | grep -qF "\"$1\""; }
# mosquitto logs "CLIENT QOS FILTER" once the subscription is in its tree (before the SUBACK).
broker_subscribed() { grep -qE ": $1 [0-2] $2\$" "$root$broker/mosquitto.log"; }
bg_done() { ! kill -0 "$1" 2>/dev/null; }
# From the broker to an app: thingmuxctl sub receives what the cloud side publishes.
ct_bg "$work/down.out" "$work/down.err" thingmuxctl sub -t "cmd/$thing/down" -C 5 -W 30
down_pid=$bg_pid
if wait_until 15 broker_subscribed "$thing" "cmd/$thing/down"; then
  check "busctl: Thing.UpstreamSubscriptions holds cmd/$thing/down" upstream_has "cmd/$thing/down"
  for i in 1 2 3 4 5; do ct mosquitto_pub "${observer[@]}" -q 1 -t "cmd/$thing/down" -m "down-$i"; done
fi
wait_until 20 bg_done "$down_pid" || true
wait "$down_pid" 2>/dev/null && down_rc=0 || down_rc=$?
check "thingmuxctl sub received the broker's 5 messages, in order (exit $down_rc)" \
  test "$(tr '\n' ' ' <"$work/down.out")" = "down-1 down-2 down-3 down-4 down-5 "
[ "$down_rc" = 0 ] || indent <"$work/down.err" >&2
# From an app to the broker: the cloud side receives what thingmuxctl pub publishes.
ct_bg "$work/up.out" "$work/up.err" mosquitto_sub "${observer[@]}" -i observer-up -q 1 -t "dt/$thing/up" -C 5 -W 30
up_pid=$bg_pid
pub_ok=0
if wait_until 15 broker_subscribed observer-up "dt/$thing/up"; then
  for i in 1 2 3 4 5; do
    ct thingmuxctl pub -q 1 -t "dt/$thing/up" -m "up-$i" --quiet && pub_ok=$((pub_ok + 1))
  done
fi
check "thingmuxctl pub -q 1: 5 of 5 acknowledged" test "$pub_ok" = 5
wait_until 20 bg_done "$up_pid" || true
wait "$up_pid" 2>/dev/null || true
check "the broker's subscriber received the 5 messages, in order" \
  test "$(tr '\n' ' ' <"$work/up.out")" = "up-1 up-2 up-3 up-4 up-5 "
check "busctl: Thing.MessagesPublished is 5" test "$(prop "$thing_path" Thing MessagesPublished)" = "t 5"
check "busctl: Thing.MessagesReceived is 5" test "$(prop "$thing_path" Thing MessagesReceived)" = "t 5"

# --- reload ---------------------------------------------------------------------------------------
phase "systemctl reload"
main_pid() { ct systemctl show -p MainPID --value thingmuxd.service; }
pid_before=$(main_pid)
set +e
ct thingmuxctl pub -q 1 -t "cmd/$thing/reload" -m before --quiet 2>"$work/refused.err"
refused_rc=$?
set -e
check "before the reload, the app rule refuses publishing to cmd/$thing/# (exit $refused_rc)" test "$refused_rc" = 1
write_config '["dt/${thing}/#", "cmd/${thing}/#"]' '  - name: package-test-unit
    match: { unit: thingmux-test-app.service }
    publish: ["dt/${thing}/#"]'
check "systemctl reload thingmuxd" ct systemctl reload thingmuxd.service
check "journalctl -u thingmuxd: configuration reloaded with 2 app rules" \
  wait_until 10 journal_has "configuration reloaded: 1 Thing(s), 2 app rule(s)"
check "after the reload, publishing to cmd/$thing/# is acknowledged" \
  ct thingmuxctl pub -q 1 -t "cmd/$thing/reload" -m after --quiet
check "the reload did not restart the daemon (MainPID $pid_before)" test "$(main_pid)" = "$pid_before"

# --- watchdog ---------------------------------------------------------------------------------------
phase "watchdog"
dropin=/etc/systemd/system/thingmuxd.service.d
mkdir -p "$root$dropin"
cat >"$root$dropin/50-package-test.conf" <<'EOF'
# packaging/test-systemd.sh: a short watchdog, a quick restart, no core file.
[Service]
WatchdogSec=3s
RestartSec=1s
LimitCORE=0
EOF
ct systemctl daemon-reload
ct systemctl restart thingmuxd.service
check "the drop-in sets WatchdogSec=3s" test "$(ct systemctl show -p WatchdogUSec --value thingmuxd.service)" = 3s
restarts() { ct systemctl show -p NRestarts --value thingmuxd.service; }
restarts_before=$(restarts)
pid_before=$(main_pid)
restarted() {
  [ "$(restarts)" = $((restarts_before + 1)) ] &&
    [ "$(ct systemctl is-active thingmuxd.service)" = active ] &&
    [ "$(main_pid)" != "$pid_before" ] && [ "$(main_pid)" != 0 ]
}
ct kill -STOP "$pid_before"
if wait_until 25 restarted; then
  pass "SIGSTOP: systemd killed the silent daemon and started it again (NRestarts $restarts_before → $(restarts))"
else
  fail "SIGSTOP: no watchdog restart within 25 s (NRestarts $(restarts), MainPID $(main_pid), was $pid_before)"
fi
check "journalctl -u thingmuxd: Watchdog timeout" journal_has "Watchdog timeout"
check "thingmuxctl status: connected again after the watchdog restart" wait_until 20 connected
rm -r "${root:?}$dropin"
ct systemctl daemon-reload

# --- upgrade: the same packages again -------------------------------------------------------------
phase "upgrade (dpkg -i of the same packages)"
socket_since() { ct systemctl show -p ActiveEnterTimestampMonotonic --value thingmuxd.socket; }
socket_before=$(socket_since)
pid_before=$(main_pid)
ct_bg "$work/app.out" "$work/app.err" thingmuxctl sub -t "cmd/$thing/app" -W 120
app_pid=$bg_pid
app_got() { grep -qxF -- "$1" "$work/app.out"; }
if wait_until 15 broker_subscribed "$thing" "cmd/$thing/app"; then
  ct mosquitto_pub "${observer[@]}" -q 1 -t "cmd/$thing/app" -m before-upgrade
fi
check "a running app (thingmuxctl sub) receives a message before the upgrade" wait_until 10 app_got before-upgrade
if ct_timeout=120 ct dpkg -i "${deb_paths[@]}" >"$work/upgrade.log" 2>&1; then
  pass "dpkg -i of the installed packages again"
else
  indent <"$work/upgrade.log" >&2
  fail "dpkg -i of the installed packages again"
fi
service_active() { [ "$(ct systemctl is-active thingmuxd.service)" = active ]; }
check "after the upgrade thingmuxd.service is active" wait_until 20 service_active
pid_after=$(main_pid)
check "the upgrade restarted thingmuxd.service (MainPID $pid_before → $pid_after)" test "$pid_after" != "$pid_before"
socket_after=$(socket_since)
if [ "$socket_after" = "$socket_before" ]; then
  pass "the upgrade left thingmuxd.socket alone (active since the same moment)"
else
  fail "the upgrade restarted thingmuxd.socket (ActiveEnterTimestampMonotonic $socket_before → $socket_after): the socket files were recreated under the apps; the postinst should restart the service only"
fi
check "thingmuxctl status: connected after the upgrade" wait_until 20 connected
# The app reconnects by itself (libthingmux's reconnect) and subscribes again: a message a second
# until one arrives.
app_back() {
  local n
  for n in $(seq 1 20); do
    ct mosquitto_pub "${observer[@]}" -q 1 -t "cmd/$thing/app" -m "after-upgrade-$n" >/dev/null 2>&1 || true
    if wait_until 1 grep -q '^after-upgrade-' "$work/app.out"; then return 0; fi
  done
  return 1
}
check "the app got messages again after the upgrade, without being restarted" app_back
check "the app is still running" kill -0 "$app_pid"
if grep -q 'reconnecting' "$work/app.err"; then note "the app said: $(grep -m1 reconnecting "$work/app.err")"; fi
kill "$app_pid" 2>/dev/null || true
wait "$app_pid" 2>/dev/null || true

# --- purge ------------------------------------------------------------------------------------------
phase "apt-get purge"
if ct_timeout=120 ct apt-get purge -y "${packages[@]}" >"$work/purge.log" 2>&1; then
  pass "apt-get purge ${packages[*]}"
else
  indent <"$work/purge.log" >&2
  fail "apt-get purge ${packages[*]}"
fi
for p in "${packages[@]}"; do
  check "$p is gone from dpkg's database" \
    test "$(ct dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || echo not-installed)" = not-installed
done
for u in thingmuxd.service thingmuxd.socket; do
  check "$u was stopped and systemd no longer knows it" \
    test "$(ct systemctl show -p LoadState -p ActiveState --value "$u" | tr '\n' ' ')" = "not-found inactive "
done
check "no enablement link is left in /etc/systemd/system" \
  test -z "$(find "$root/etc/systemd/system" -name 'thingmuxd.*' 2>/dev/null)"
check "no thingmuxd process is left" bash -c "! nsenter --target $init_pid --all pgrep -x thingmuxd >/dev/null"
check "the sockets are gone" test ! -e "$root/run/thingmux/thingmux.sock" -a ! -e "$root/run/thingmux/mqtt.sock"
for f in /usr/bin/thingmuxd /usr/bin/thingmuxctl /lib/systemd/system/thingmuxd.service /etc/thingmux/thingmux.yaml; do
  check "$f is gone" test ! -e "$root$f"
done
check "the system user thingmux stays (Debian does not remove system users)" has_user
left_etc=$(find "$root/etc/thingmux" -mindepth 1 -printf '%P ' 2>/dev/null || true)
[ -z "$left_etc" ] || note "left in /etc/thingmux, the administrator's files: $left_etc"
left_var=$(find "$root/var/lib/thingmux" -mindepth 1 -maxdepth 1 -printf '%P ' 2>/dev/null || true)
[ -z "$left_var" ] || note "left in /var/lib/thingmux after the purge: $left_var"

phase "done"
if [ "$failures" -gt 0 ]; then
  echo "test-systemd: $failures check(s) failed" >&2
  exit 1
fi
echo "test-systemd: all checks passed in $((SECONDS - started)) s ($debs)"
