#!/usr/bin/env bash
# Installs every Debian 12 package thingmux needs to build, test, fuzz and run its demo.
# Idempotent: when everything is present it installs nothing and says so in one line.
#   scripts/bootstrap.sh [--bench] [--stress] [--cross ARCH]...
#   --bench: also the benchmark tools (gnuplot-nox for scripts/bench-plot.sh, valgrind for callgrind).
#   --stress: also stress-ng, the CPU load of scripts/stress-fault.sh.
#   --cross ARCH: also what cross-building for ARCH (arm64, armhf) needs: the cross compiler,
#            qemu-user-static, mmdebstrap, and a sysroot of ARCH's libraries in
#            /var/cache/thingmux-cross/ARCH (from the Debian mirror, about 300 MB;
#            THINGMUX_SYSROOTS=DIR puts it in DIR/ARCH, THINGMUX_CROSS_MIRROR names another
#            mirror). Repeat it for several architectures.
set -euo pipefail
# shellcheck source=lib/help.sh
. "$(dirname "$0")/lib/help.sh"

bench=0
stress=0
cross=()
while [ $# -gt 0 ]; do
  case $1 in
    --bench) bench=1 ;;
    --stress) stress=1 ;;
    --cross) [ $# -ge 2 ] || { echo "bootstrap: --cross needs an architecture (arm64 or armhf)" >&2; exit 2; }
             cross+=("$2"); shift ;;
    --cross=*) cross+=("${1#--cross=}") ;;
    -h | --help) script_help "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument '$1' (use --bench, --stress, --cross ARCH or nothing)" >&2; exit 2 ;;
  esac
  shift
done
if [ ${#cross[@]} -gt 0 ]; then
  # shellcheck source=lib/cross.sh
  . "$(dirname "$0")/lib/cross.sh"
  for a in "${cross[@]}"; do cross_arch "$a" || exit 2; done
fi

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  clang libclang-rt-14-dev
  libboost1.81-dev libssl-dev libsystemd-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libsqlite3-dev libcli11-dev
  mosquitto mosquitto-clients dbus systemd openssl procps iproute2 python3 python3-paho-mqtt python3-botocore
  tinyproxy socat
  faketime
  softhsm2 opensc libengine-pkcs11-openssl swtpm swtpm-tools tpm2-openssl tpm2-tools
  debhelper dpkg-dev lintian groff-base man-db
  systemd-container
  curl prometheus python3-prometheus-client
)
what="build and test"
if ((bench)); then
  packages+=(gnuplot-nox valgrind)
  what="build, test and benchmark"
fi
if ((stress)); then
  packages+=(stress-ng)
fi
for a in "${cross[@]}"; do
  cross_arch "$a"
  packages+=("${cross_host_packages[@]}")
  what="$what, cross-build for $a"
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

sudo=
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  if ! command -v sudo >/dev/null; then
    if [ ${#missing[@]} -gt 0 ]; then
      echo "bootstrap: missing packages (${missing[*]}); run this script as root" >&2; exit 1
    fi
    sudo=  # only a missing sysroot needs root now: cross_make_sysroot says so
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} $what dependencies are installed"
else
  echo "bootstrap: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "bootstrap: done"
fi

# The sysroot of each --cross architecture, unless one for the same build dependencies is there.
for a in "${cross[@]}"; do
  cross_arch "$a"
  if cross_require 2>/dev/null; then
    echo "bootstrap: the $a sysroot is ready ($cross_sysroot)"
  else
    cross_make_sysroot
  fi
done
