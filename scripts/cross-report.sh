#!/usr/bin/env bash
# What a small gateway cares about, for the packages of one architecture in DEBS_DIR (made by
# packaging/build-deb.sh [--arch ARCH]): the size of each package (file and installed), the
# size of each program's code and data (size(1): text, data, bss), and the daemon's memory while
# idle: thingmuxd from the package, connected to the mTLS test broker, no app attached.
#   bash scripts/cross-report.sh ARCH DEBS_DIR     prints the report and writes DEBS_DIR/report-ARCH.txt
# ARCH may be this machine's own architecture (the programs run natively) or one that
# scripts/lib/cross.sh knows: the daemon then runs under qemu-user, and only the guest's memory is
# counted: qemu logs the guest's page layout (-d page), and the host mappings behind those pages
# are summed from /proc/PID/smaps, leaving out qemu's own (its translated code, its heap).
# Emulation makes the programs slower, not bigger: the same program needs the same memory.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/help.sh
. scripts/lib/help.sh
case ${1:-} in -h | --help) script_help "$0"; exit 0 ;; esac
[ $# -eq 2 ] || { echo "usage: $0 ARCH DEBS_DIR" >&2; exit 2; }
arch=$1
debs=$(cd "$2" && pwd)
version=$(sed -n 's/^project(thingmux VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
run=()
size_tool=size
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  # shellcheck source=lib/cross.sh
  . scripts/lib/cross.sh
  cross_arch "$arch" || exit 2
  cross_require || exit 1
  size_tool=$cross_triplet-size
fi
multiarch=$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-report.XXXXXX")
broker=tests/support/aws-like-broker
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  "$broker" stop "$tmp/broker" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
report=$tmp/report.txt
kib() { echo "$(( ($1 + 1023) / 1024 )) KiB"; }

{
  echo "thingmux $version for $arch ($multiarch)"
  echo
  echo "Packages (file size, installed size):"
  for p in thingmuxd libthingmux2 libthingmux-dev thingmuxd-dbgsym libthingmux2-dbgsym; do
    f=$debs/${p}_${version}_${arch}.deb
    [ -f "$f" ] || { echo "cross-report: no $f; build it with packaging/build-deb.sh --arch $arch" >&2; exit 1; }
    printf '  %-44s %10s %12s\n' "${f##*/}" "$(kib "$(stat -c %s "$f")")" "$(dpkg-deb -f "$f" Installed-Size) KiB"
  done
} >"$report"

root=$tmp/root
for p in thingmuxd libthingmux2; do dpkg -x "$debs/${p}_${version}_${arch}.deb" "$root"; done
{
  echo
  echo "Programs as packaged (stripped; bytes):"
  printf '  %-22s %10s %8s %8s\n' file text data bss
  for f in usr/bin/thingmuxd usr/bin/thingmuxctl usr/bin/thingmux-probe "usr/lib/$multiarch/libthingmux.so.2"; do
    "$size_tool" "$root/$f" | awk -v n="${f##*/}" 'NR == 2 { printf "  %-22s %10d %8d %8d\n", n, $1, $2, $3 }'
  done
} >>"$report"

# The idle daemon: one Thing connected to the test broker, no app.
"$broker" start "$tmp/broker" >/dev/null
{
  "$broker" things-yaml "$tmp/broker"
  cat <<YAML
ipc:
  socket: $tmp/thingmux.sock
  group: ""
spool:
  path: $tmp/spool.db
metrics:
  socket: $tmp/metrics.sock
YAML
} >"$tmp/thingmux.yaml"
if [ -n "${cross_runner+x}" ]; then
  run=("$cross_qemu" -L "$cross_sysroot" -d page -D "$tmp/qemu-pages.log")
fi
LD_LIBRARY_PATH=$root/usr/lib/$multiarch "${run[@]}" "$root/usr/bin/thingmuxd" --config "$tmp/thingmux.yaml" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 300); do grep -q "connected as gateway-01" "$tmp/daemon.log" && break; sleep 0.1; done
grep -q "connected as gateway-01" "$tmp/daemon.log" ||
  { echo "cross-report: thingmuxd did not connect within 30 s:" >&2; cat "$tmp/daemon.log" >&2; exit 1; }
# Measured once the start-up is over: the connection is up and the daemon waits for work.
sleep 2
cp "/proc/$daemon_pid/smaps" "$tmp/smaps"
python3 - "$tmp/smaps" "${run:+$tmp/qemu-pages.log}" >>"$report" <<'PY'
import re, sys
smaps, pages = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
vmas, cur = [], None
for line in open(smaps):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        cur = {"start": int(m[1], 16), "end": int(m[2], 16), "path": m[3], "Rss": 0, "Anonymous": 0}
        vmas.append(cur)
        continue
    m = re.match(r"^(Rss|Anonymous):\s+(\d+) kB", line)
    if m and cur is not None:
        cur[m[1]] = int(m[2])
where = "the process"
if pages:
    # The guest's pages, from the last layout qemu logged, moved by guest_base to host addresses.
    text = open(pages).read()
    base = int(re.findall(r"Locating guest address space @ (0x[0-9a-f]+)", text)[-1], 16)
    table = text.rsplit("start", 1)[1].splitlines()[1:]
    ranges = []
    for row in table:
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", row)
        if not m:
            break
        ranges.append((int(m[1], 16) + base, int(m[2], 16) + base))
    inside = lambda v: any(s <= v["start"] and v["end"] <= e for s, e in ranges)
    total_anon = sum(v["Anonymous"] for v in vmas)
    vmas = [v for v in vmas if inside(v)]
    where = "the guest (qemu's own %d KiB of anonymous memory left out)" % (total_anon - sum(v["Anonymous"] for v in vmas))
anon = sum(v["Anonymous"] for v in vmas)
rss = sum(v["Rss"] for v in vmas)
print()
print("Idle thingmuxd (1 Thing connected, no app), memory of %s:" % where)
print("  anonymous (heap, stacks, data): %6d KiB" % anon)
print("  resident in all (with code):    %6d KiB" % rss)
PY
cp "$report" "$debs/report-$arch.txt"
cat "$report"
