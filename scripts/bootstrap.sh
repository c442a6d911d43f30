#!/usr/bin/env bash
# Installs every Debian 12 package thingmux needs to build, test, fuzz and run its demo.
# Idempotent: when everything is present it installs nothing and says so in one line.
#   scripts/bootstrap.sh [--bench] [--stress]
#   --bench: also the benchmark tools (gnuplot-nox for scripts/bench-plot.sh, valgrind for callgrind).
#   --stress: also stress-ng, the CPU load of scripts/stress-fault.sh.
set -euo pipefail

bench=0
stress=0
for arg in "$@"; do
  case $arg in
    --bench) bench=1 ;;
    --stress) stress=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument '$arg' (use --bench, --stress or nothing)" >&2; exit 2 ;;
  esac
done

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

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} $what dependencies are installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  command -v sudo >/dev/null || { echo "bootstrap: missing packages (${missing[*]}); run this script as root" >&2; exit 1; }
else
  sudo=
fi

echo "bootstrap: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
