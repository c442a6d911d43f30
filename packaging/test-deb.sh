#!/usr/bin/env bash
# Builds the Debian packages (packaging/build-deb.sh) and checks them:
#   - each package holds the files it should (manual pages, D-Bus interface, documents, examples)
#     and nothing under /usr/local or from the build tree;
#   - dependencies: thingmuxd and libthingmux-dev need libthingmux2 of the same version;
#   - maintainer scripts create the user before the directories; an upgrade restarts the service
#     and leaves the socket alone; the configuration is a conffile;
#   - the .changes sits next to the packages it lists; lintian --fail-on error on it (warnings
#     are printed);
#   - the manual pages render without a warning; every relative link of the installed Markdown
#     documents resolves in the installed tree;
#   - unpacked into a scratch root: the binaries run on the packaged library, --check-config on
#     the packaged configuration names the missing certificates and accepts it once they exist,
#     sysusers.d + tmpfiles.d give the directories their owners, systemd-analyze verify accepts
#     the units, and a program builds against libthingmux-dev with CMake and with pkg-config.
#
#   bash packaging/test-deb.sh [--arch ARCH] [--out DIR]   build into DIR (default: a scratch directory)
#   bash packaging/test-deb.sh [--arch ARCH] --debs DIR     check the packages already in DIR
# --arch arm64|armhf checks that architecture's packages (cross-built by build-deb.sh --arch): the
# programs run under qemu-user with the sysroot of scripts/bootstrap.sh --cross ARCH, and the
# consumer programs are cross-compiled against the unpacked packages.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
debs=
out=
arch=$(dpkg --print-architecture)
while [ $# -gt 0 ]; do
  case $1 in
    --debs) [ $# -ge 2 ] || { echo "test-deb: --debs needs a value" >&2; exit 2; }; debs=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "test-deb: --out needs a value" >&2; exit 2; }; out=$2; shift 2 ;;
    --arch) [ $# -ge 2 ] || { echo "test-deb: --arch needs a value" >&2; exit 2; }; arch=$2; shift 2 ;;
    *) echo "usage: $0 [--arch ARCH] [--out DIR | --debs DIR]" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-deb-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
quiet() {  # quiet COMMAND...: its output only when it fails
  "$@" >"$tmp/quiet.out" 2>&1 || { local rc=$?; sed 's/^/  /' "$tmp/quiet.out" >&2; return $rc; }
}

version=$(sed -n 's/^project(thingmux VERSION \([0-9][0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
multiarch=$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
libdir=/usr/lib/$multiarch
# How this architecture's programs run here, and how programs are built for it.
run=()
cxx=(c++)
cmake_cross=()
list_libs() { ldd "$1"; }
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  # shellcheck source=../scripts/lib/cross.sh
  . "$repo/scripts/lib/cross.sh"
  cross_arch "$arch" || exit 2
  cross_require || exit 1
  run=("${cross_runner[@]}")
  cxx=("$cross_triplet-g++" --sysroot="$cross_sysroot")
  cmake_cross=(-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/cross-sysroot.cmake")
  # ldd, for another architecture: the dynamic loader the programs name lists what it would load
  # (for a library too).
  list_libs() {
    local interp
    interp=$(readelf -l "$root/usr/bin/thingmuxd" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    "${cross_runner[@]}" "$cross_sysroot$interp" --list "$1"
  }
fi

if [ -z "$debs" ]; then
  debs=${out:-$tmp/debs}
  bash "$repo/packaging/build-deb.sh" --arch "$arch" "$debs"
fi
debs=$(cd "$debs" && pwd)

# --- the three packages exist ------------------------------------------------------------
declare -A deb
for p in thingmuxd libthingmux2 libthingmux-dev; do
  deb[$p]=$debs/${p}_${version}_${arch}.deb
  if [ ! -f "${deb[$p]}" ]; then
    echo "FAIL: ${deb[$p]} missing; packages in $debs:" >&2
    ls -1 "$debs" >&2
    exit 1
  fi
done
pass "packages ${!deb[*]} version $version for $arch"

# --- file lists ---------------------------------------------------------------------------
contents() {  # paths in a package, absolute, without trailing slash
  dpkg-deb -c "$1" | awk '{print $6}' | sed -e 's|^\.||' -e 's|/$||' | grep -v '^$'
}
for p in "${!deb[@]}"; do contents "${deb[$p]}" >"$tmp/$p.list"; done

expect_paths() {  # expect_paths PACKAGE PATH...
  local p=$1; shift
  local missing=()
  for f in "$@"; do grep -qxF "$f" "$tmp/$p.list" || missing+=("$f"); done
  if [ ${#missing[@]} -eq 0 ]; then pass "$p holds its $# expected paths"; else fail "$p lacks: ${missing[*]}"; fi
}
refuse_paths() {  # refuse_paths PACKAGE REGEX WHY
  local bad
  bad=$(grep -E "$2" "$tmp/$1.list" || true)
  if [ -z "$bad" ]; then pass "$1 has no $3"; else fail "$1 has $3: $(echo "$bad" | tr '\n' ' ')"; fi
}

# The source files the packages were built from (build-deb.sh lists them), else this tree's.
if [ -f "$debs/source-files.txt" ]; then
  cp "$debs/source-files.txt" "$tmp/sources"
else
  (cd "$repo" && find . -path './build*' -prune -o \( -type f -print \) | sed 's|^\./||') >"$tmp/sources"
fi
sources() { grep -E "$1" "$tmp/sources" | sed 's|.*/||'; }  # base names of matching source paths
# The documents keep the tree's layout: README.md, then docs/*.md and docs/img/*.png.
docs=(/usr/share/doc/thingmuxd/README.md /usr/share/doc/thingmuxd/copyright)
while read -r f; do docs+=("/usr/share/doc/thingmuxd/docs/$f"); done < <(sources '^docs/[^/]*\.md$')
while read -r f; do docs+=("/usr/share/doc/thingmuxd/docs/img/$f"); done < <(sources '^docs/img/[^/]*\.png$')
expect_paths thingmuxd \
  /usr/bin/thingmuxd /usr/bin/thingmuxctl /usr/bin/thingmux-probe \
  /lib/systemd/system/thingmuxd.service /lib/systemd/system/thingmuxd.socket \
  /usr/lib/sysusers.d/thingmux.conf /usr/lib/tmpfiles.d/thingmux.conf \
  /usr/share/dbus-1/system.d/org.thingmux.Thingmux1.conf \
  /usr/share/dbus-1/interfaces/org.thingmux.Thingmux1.xml \
  /etc/thingmux/thingmux.yaml "${docs[@]}" \
  /usr/share/man/man1/thingmuxctl.1.gz /usr/share/man/man5/thingmux.yaml.5.gz \
  /usr/share/man/man8/thingmuxd.8.gz /usr/share/man/man8/thingmux-probe.8.gz
refuse_paths thingmuxd 'libthingmux\.so|^/usr/include' "library or header files"
refuse_paths thingmuxd '^/usr/share/man/man1/(thingmuxd|thingmux-probe)\.1' "manual pages of the daemon in section 1"
refuse_paths thingmuxd '^/usr/share/doc/thingmuxd/docs/man(/|$)' "roff sources among the documents"

headers=()
while read -r f; do headers+=("/usr/include/thingmux/$f"); done < <(sources '^libclient/include/thingmux/[^/]*\.hpp$')
check "the sources list headers and documents" test ${#headers[@]} -gt 0 -a ${#docs[@]} -gt 2
expect_paths libthingmux2 "$libdir/libthingmux.so.2"
refuse_paths libthingmux2 "^$libdir/libthingmux\.so$|^/usr/include|^/usr/bin|^/etc|cmake|pkgconfig" \
  "development or daemon files"
expect_paths libthingmux-dev "${headers[@]}" "$libdir/libthingmux.so" \
  "$libdir/cmake/thingmux/thingmuxConfig.cmake" "$libdir/cmake/thingmux/thingmuxConfigVersion.cmake" \
  "$libdir/cmake/thingmux/thingmuxTargets.cmake" "$libdir/pkgconfig/thingmux.pc"
dev_docs=(/usr/share/man/man3/libthingmux.3.gz /usr/share/doc/libthingmux-dev/libthingmux.md)
while read -r f; do dev_docs+=("/usr/share/doc/libthingmux-dev/$f"); done < <(sources '^docs/c-api\.md$')
while read -r f; do dev_docs+=("/usr/share/doc/libthingmux-dev/examples/${f#libclient/examples/}"); done < <(grep -E '^libclient/examples/' "$tmp/sources")
check "the sources list the library's examples" test ${#dev_docs[@]} -gt 2
expect_paths libthingmux-dev "${dev_docs[@]}"
refuse_paths libthingmux-dev 'libthingmux\.so\.|^/usr/bin|^/etc' "runtime files"
for p in "${!deb[@]}"; do
  refuse_paths "$p" '^/usr/local|(^|/)(obj-[^/]*|build[^/]*)/|^/tmp|^/root|^/home' "paths under /usr/local or from a build tree"
done

# --- control data -------------------------------------------------------------------------
field() { dpkg-deb -f "${deb[$1]}" "$2"; }
has_dep() {  # has_dep PACKAGE REGEX: a Depends alternative matches
  field "$1" Depends | tr ',' '\n' | sed 's/^ *//' | grep -qE "$2"
}
check "thingmuxd depends on libthingmux2 (= $version)" has_dep thingmuxd "^libthingmux2 \\(= ${version//./\\.}\\)$"
check "thingmuxd depends on libc6" has_dep thingmuxd '^libc6 \(>= '
check "libthingmux-dev depends on libthingmux2 (= $version)" has_dep libthingmux-dev "^libthingmux2 \\(= ${version//./\\.}\\)$"
check "libthingmux2 depends on libc6" has_dep libthingmux2 '^libc6 \(>= '
check "libthingmux2 depends on libstdc++6" has_dep libthingmux2 '^libstdc\+\+6 \(>= '
check "sections net, libs, libdevel" \
  test "$(field thingmuxd Section) $(field libthingmux2 Section) $(field libthingmux-dev Section)" = "net libs libdevel"

for p in "${!deb[@]}"; do mkdir -p "$tmp/control/$p" && dpkg-deb -e "${deb[$p]}" "$tmp/control/$p"; done
ctl=$tmp/control
check "/etc/thingmux/thingmux.yaml is a conffile" grep -qxF /etc/thingmux/thingmux.yaml "$ctl/thingmuxd/conffiles"
check "libthingmux2 has a symbols file for libthingmux.so.2" grep -q '^libthingmux\.so\.2 libthingmux2 ' "$ctl/libthingmux2/symbols"
check "libthingmux2 triggers ldconfig" grep -q ldconfig "$ctl/libthingmux2/triggers"
postinst=$ctl/thingmuxd/postinst
sysusers_line=$(grep -n 'systemd-sysusers' "$postinst" | head -1 | cut -d: -f1 || true)
tmpfiles_line=$(grep -n 'systemd-tmpfiles' "$postinst" | head -1 | cut -d: -f1 || true)
check "postinst creates the user (sysusers) before the directories (tmpfiles)" \
  test -n "$sysusers_line" -a -n "$tmpfiles_line" -a "${sysusers_line:-0}" -lt "${tmpfiles_line:-0}"
# dh_installsystemd --no-enable: units enabled only when they were before (debian-installed).
for u in thingmuxd.service thingmuxd.socket; do
  check "postinst does not enable $u on first installation" grep -q "deb-systemd-helper debian-installed '$u'" "$postinst"
done
check "postinst enables no unit unconditionally" bash -c "! grep -q 'new installations run enable' '$postinst'"
check "prerm stops the units on removal" grep -q 'deb-systemd-invoke stop.*thingmuxd' "$ctl/thingmuxd/prerm"
# An upgrade restarts the daemon but not its socket: restarting thingmuxd.socket would remove the
# socket files (RemoveOnStop=yes) and stop the service with it, so apps would see a reset.
restarts_service_on_upgrade() {
  grep -q '_dh_action=restart' "$postinst" &&
    grep -qF "deb-systemd-invoke \$_dh_action 'thingmuxd.service' >" "$postinst"
}
socket_only_started() {  # in postinst and preinst, thingmuxd.socket is only ever started
  local lines
  lines=$(cat "$postinst" "$ctl/thingmuxd/preinst" 2>/dev/null | grep 'deb-systemd-invoke.*thingmuxd\.socket' || true)
  ! grep -qvF "deb-systemd-invoke start 'thingmuxd.socket'" <<<"$lines"
}
socket_stopped_on_remove_only() {
  grep -B1 "deb-systemd-invoke stop 'thingmuxd.socket'" "$ctl/thingmuxd/prerm" | grep -qF '[ "$1" = remove ]'
}
check "postinst restarts thingmuxd.service on upgrade" restarts_service_on_upgrade
check "no maintainer script restarts or stops thingmuxd.socket on upgrade" socket_only_started
check "prerm stops thingmuxd.socket on removal only" socket_stopped_on_remove_only

# --- the .changes and lintian -----------------------------------------------------------------
# The .changes lists every package of the build (debug symbols too) by file name only: they must
# be next to it for lintian, debsign and dput to work on it.
changes=$debs/thingmux_${version}_${arch}.changes
lintian_targets=("${deb[@]}")
if [ -f "$changes" ]; then
  pass "thingmux_${version}_${arch}.changes is next to the packages"
  listed=$(sed -n '/^Files:/,/^[^ ]/{s/^ [0-9a-f]\{32\} [0-9]* [^ ]* [^ ]* //p}' "$changes")
  missing_listed=()
  for f in $listed; do [ -f "$debs/$f" ] || missing_listed+=("$f"); done
  check "every file the .changes lists is next to it (${missing_listed[*]:-all $(wc -w <<<"$listed")})" \
    test ${#missing_listed[@]} -eq 0 -a -n "$listed"
  for p in "${!deb[@]}"; do
    check ".changes lists ${deb[$p]##*/}" grep -qxF "${deb[$p]##*/}" <<<"$listed"
  done
  [ ${#missing_listed[@]} -eq 0 ] && lintian_targets=("$changes")
else
  fail "no $changes next to the packages: $(ls -1 "$debs" | tr '\n' ' ')"
fi
echo "lintian ${lintian_targets[*]##*/}:"
if lintian --fail-on error --display-info "${lintian_targets[@]}" >"$tmp/lintian.txt" 2>&1; then
  pass "lintian: no errors"
else
  fail "lintian found errors"
fi
sed 's/^/  lintian: /' "$tmp/lintian.txt" | grep -v 'running with root privileges' || true

# --- unpacked into a scratch root ---------------------------------------------------------
root=$tmp/root
for p in "${!deb[@]}"; do dpkg -x "${deb[$p]}" "$root"; done
export LD_LIBRARY_PATH=$root$libdir

resolved=$(list_libs "$root/usr/bin/thingmuxctl" | awk '$1 == "libthingmux.so.2" {print $3}')
check "thingmuxctl loads the packaged libthingmux.so.2 ($resolved)" test "$resolved" = "$root$libdir/libthingmux.so.2"
all_resolve() { local out; out=$(list_libs "$1") || return 1; ! grep -q 'not found' <<<"$out"; }
no_rpath() { local out; out=$(readelf -d "$1") || return 1; ! grep -qE 'RPATH|RUNPATH' <<<"$out"; }
for b in "$root"/usr/bin/thingmuxd "$root"/usr/bin/thingmuxctl "$root"/usr/bin/thingmux-probe "$root$libdir"/libthingmux.so.2; do
  check "${b##*/}: every shared library resolves" all_resolve "$b"
  check "${b##*/}: no RPATH/RUNPATH" no_rpath "$b"
done
check "thingmuxd --version says $version" test "$("${run[@]}" "$root/usr/bin/thingmuxd" --version)" = "thingmuxd $version"
check "thingmuxctl --version says $version" test "$("${run[@]}" "$root/usr/bin/thingmuxctl" --version)" = "thingmuxctl $version"
check "thingmux-probe --help runs" quiet "${run[@]}" "$root/usr/bin/thingmux-probe" --help
leaked=$(grep -rlE "/tmp/thingmux-deb\.|obj-$multiarch|$repo/" "$root" 2>/dev/null || true)
check "no build-tree path inside any packaged file" test -z "$leaked"
[ -z "$leaked" ] || echo "  build paths in: $leaked" >&2

# The manual pages, as man shows them: no warning from groff or man.
for page in "$root"/usr/share/man/man*/*.gz; do
  [ -e "$page" ] || { fail "no manual pages in the packages"; break; }
  if LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -l -Tutf8 "$page" 2>"$tmp/man.err" >"$tmp/man.out" &&
     [ ! -s "$tmp/man.err" ] && [ -s "$tmp/man.out" ]; then
    pass "man ${page#"$root"}: renders without warnings"
  else
    fail "man ${page#"$root"}:"; sed 's/^/  /' "$tmp/man.err" >&2
  fi
done

# Relative links of the installed Markdown documents (README.md's docs/x.md, the pages' x.md and
# ../README.md, libthingmux-dev's links to thingmuxd's pages) resolve in the installed tree.
broken_links=()
while IFS= read -r -d '' md; do
  while IFS= read -r target; do
    case $target in http://* | https://* | mailto:* | /* | '#'* | '') continue ;; esac
    [ -e "$(dirname "$md")/${target%%#*}" ] || broken_links+=("${md#"$root"} -> $target")
  done < <(grep -oE '\]\([^) ]+\)' "$md" | sed -e 's/^](//' -e 's/)$//')
done < <(find "$root/usr/share/doc" -name '*.md' -print0)
check "every relative link of the installed documents resolves (${broken_links[*]:-none broken})" test ${#broken_links[@]} -eq 0

# The packaged configuration as shipped: certificates in /etc/thingmux that are not there yet.
config=$root/etc/thingmux/thingmux.yaml
set +e
"${run[@]}" "$root/usr/bin/thingmuxd" --check-config --config "$config" >"$tmp/check.out" 2>&1
rc=$?
set -e
missing_msgs=0
for key in ca:/etc/thingmux/AmazonRootCA1.pem cert:/etc/thingmux/gateway-01.cert.pem key:/etc/thingmux/gateway-01.private.key; do
  file=${key#*:}
  [ -e "$file" ] && { echo "  note: $file exists on this machine; not expecting a message for it"; continue; }
  missing_msgs=$((missing_msgs + 1))
  check "--check-config names the missing ${key%%:*} file $file" \
    grep -qF "things[0].${key%%:*}: file $file does not exist" "$tmp/check.out"
done
if [ "$missing_msgs" -gt 0 ]; then
  check "--check-config on the shipped configuration exits 1" test "$rc" = 1
fi

# The same configuration with certificate files that exist.
pki=$tmp/pki
mkdir -p "$pki"
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
  -keyout "$pki/ca.key" -out "$pki/AmazonRootCA1.pem"
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=gateway-01 \
  -keyout "$pki/gateway-01.private.key" -out "$pki/gateway-01.cert.pem"
chmod 0640 "$pki/gateway-01.private.key"
sed -e "s|/etc/thingmux/AmazonRootCA1.pem|$pki/AmazonRootCA1.pem|" \
    -e "s|/etc/thingmux/gateway-01.cert.pem|$pki/gateway-01.cert.pem|" \
    -e "s|/etc/thingmux/gateway-01.private.key|$pki/gateway-01.private.key|" "$config" >"$tmp/thingmux.yaml"
if ! getent group thingmux >/dev/null; then
  # ipc.group must exist on the machine that checks the file; the package creates it on install.
  sed -i "s|^\(  group:\) thingmux|\1 $(id -gn)|" "$tmp/thingmux.yaml"
fi
set +e
"${run[@]}" "$root/usr/bin/thingmuxd" --check-config --config "$tmp/thingmux.yaml" >"$tmp/check-ok.out" 2>&1
rc=$?
set -e
check "--check-config accepts the configuration once the certificates exist" test "$rc" = 0
check "--check-config reports 1 Thing" grep -q ': OK: 1 Thing(s)' "$tmp/check-ok.out"
[ "$rc" = 0 ] || sed 's/^/  /' "$tmp/check-ok.out" >&2

# What the postinst does, on the scratch root: the user first, then its directories.
if [ "$(id -u)" = 0 ]; then
  check "systemd-sysusers applies thingmux.conf" quiet systemd-sysusers --root="$root" thingmux.conf
  check "systemd-tmpfiles --create applies thingmux.conf" quiet systemd-tmpfiles --root="$root" --create thingmux.conf
  uid=$(awk -F: '$1 == "thingmux" {print $3}' "$root/etc/passwd")
  gid=$(awk -F: '$1 == "thingmux" {print $3}' "$root/etc/group")
  check "sysusers.d creates user and group thingmux" test -n "$uid" -a -n "$gid"
  # The spool is the daemon's alone; /etc/thingmux gets the mode thingmux.tmpfiles gives it.
  check "tmpfiles.d: /var/lib/thingmux thingmux:thingmux 0750" test "$(stat -c '%u:%g %a' "$root/var/lib/thingmux")" = "$uid:$gid 750"
  etc_mode=$(awk '$1 == "d" && $2 == "/etc/thingmux" {print $3}' "$root/usr/lib/tmpfiles.d/thingmux.conf")
  check "tmpfiles.d: /etc/thingmux root:thingmux ${etc_mode:-?}, writable by root only" \
    test "$(stat -c '%u:%g %a' "$root/etc/thingmux")" = "0:$gid ${etc_mode#0}" -a $(( 8#${etc_mode:-22} & 8#022 )) = 0
else
  echo "  note: not root; sysusers.d/tmpfiles.d not applied"
fi

# The installed units, with ExecStart on the unpacked daemon (verify wants it to exist).
units=$tmp/units
mkdir -p "$units"
sed "s|^ExecStart=/usr/bin/thingmuxd|ExecStart=$root/usr/bin/thingmuxd|" "$root/lib/systemd/system/thingmuxd.service" >"$units/thingmuxd.service"
cp "$root/lib/systemd/system/thingmuxd.socket" "$units/"
check "the service runs the packaged daemon and file" grep -qxF "ExecStart=/usr/bin/thingmuxd --config /etc/thingmux/thingmux.yaml" "$root/lib/systemd/system/thingmuxd.service"
if (cd "$units" && systemd-analyze verify --man=no thingmuxd.service thingmuxd.socket) >"$tmp/verify.out" 2>&1 &&
   [ ! -s "$tmp/verify.out" ]; then
  pass "systemd-analyze verify: no remarks"
else
  fail "systemd-analyze verify:"; sed 's/^/  /' "$tmp/verify.out" >&2
fi
for u in thingmuxd.service thingmuxd.socket; do
  for doc in $(sed -n 's/^Documentation=//p' "$root/lib/systemd/system/$u"); do
    case $doc in file:*) check "$u: Documentation=$doc is in the package" test -f "$root${doc#file:}" ;; esac
  done
done

# libthingmux-dev: a program built with find_package(thingmux) and with pkg-config.
app=$tmp/app
mkdir -p "$app"
cat >"$app/main.cpp" <<'EOF'
#include <thingmux/client.hpp>
#include <thingmux/topic.hpp>
#include <iostream>
int main() {
    const bool ok = thingmux::topic_matches("cmd/+/#", "cmd/gateway-01/reboot");
    std::cout << (ok ? "match" : "no match") << '\n';
    return ok ? 0 : 1;
}
EOF
cat >"$app/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES CXX)
find_package(thingmux $version REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE thingmux::thingmux)
EOF
# Cross: the toolchain searches only below its roots, so the unpacked root is one of them.
if [ ${#cmake_cross[@]} -gt 0 ]; then cmake_prefix=(-DCMAKE_FIND_ROOT_PATH="$root" -DCMAKE_PREFIX_PATH=/usr)
else cmake_prefix=(-DCMAKE_PREFIX_PATH="$root/usr"); fi
if cmake -S "$app" -B "$app/build" "${cmake_cross[@]}" "${cmake_prefix[@]}" >"$app/cmake.log" 2>&1 &&
   cmake --build "$app/build" >>"$app/cmake.log" 2>&1; then
  check "find_package(thingmux) found the packaged CMake files" grep -qF "thingmux_DIR:PATH=$root$libdir/cmake/thingmux" "$app/build/CMakeCache.txt"
  check "a CMake consumer links the packaged library and runs" test "$("${run[@]}" "$app/build/consumer")" = match
  consumer_lib=$(list_libs "$app/build/consumer" | awk '$1 == "libthingmux.so.2" {print $3}')
  check "the CMake consumer loads $consumer_lib" test "$consumer_lib" = "$root$libdir/libthingmux.so.2"
else
  fail "CMake consumer of libthingmux-dev does not build:"; sed 's/^/  /' "$app/cmake.log" >&2
fi
export PKG_CONFIG_PATH=$root$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
if flags=$(pkg-config --cflags --libs "thingmux = $version") &&
   # shellcheck disable=SC2086
   "${cxx[@]}" -std=c++20 "$app/main.cpp" -o "$app/consumer-pc" $flags >"$app/pc.log" 2>&1; then
  check "pkg-config thingmux gives flags for the unpacked root ($flags)" bash -c "[[ '$flags' == *'-I$root/usr/include'* ]]"
  check "a pkg-config consumer links the packaged library and runs" test "$("${run[@]}" "$app/consumer-pc")" = match
else
  fail "pkg-config consumer of libthingmux-dev does not build: ${flags:-}"; sed 's/^/  /' "$app/pc.log" >&2 || true
fi

if [ "$failures" -gt 0 ]; then
  echo "test-deb: $failures check(s) failed" >&2
  exit 1
fi
echo "test-deb: all checks passed ($debs)"
