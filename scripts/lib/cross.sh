# Sourced by scripts/bootstrap.sh, packaging/build-deb.sh, packaging/test-deb.sh and
# scripts/cross-test.sh: what a cross build for another Debian architecture needs, named once.
# docs/packaging.md explains the design (a sysroot of the target's packages, not multiarch).
#
#   cross_arch ARCH     sets cross_triplet, cross_qemu, cross_sysroot (THINGMUX_SYSROOTS/ARCH,
#                       default /var/cache/thingmux-cross/ARCH) and cross_host_packages, or says
#                       which architectures exist and returns 2
#   cross_require       checks that the compiler, qemu and the sysroot are there, or says how to
#                       get them and returns 1
#   cross_make_sysroot  (re)creates the sysroot (root, or sudo in $sudo; needs mmdebstrap)
#   "${cross_runner[@]}" PROGRAM ARGS...   runs a program of ARCH under qemu-user, whose -L makes
#                       the target's dynamic loader and libraries come from the sysroot
#
# The sysroot is the target's Debian packages extracted into a directory by mmdebstrap, with no
# maintainer script run and no package of the build machine touched: Debian 12's libyaml-cpp-dev
# is not Multi-Arch: same, so a multiarch cross build cannot install it beside the native one, and
# multiarch needs the same version of every library on both architectures, which a machine with
# security updates installed often does not get from its mirror.
# The sysroot lives outside the source tree on purpose: every build that uses it (scripts/build.sh
# in the tree, debhelper in build-deb.sh's scratch copy) then names it by the same absolute path,
# and ccache, which rewrites paths inside each build's tree to relative ones, finds the objects
# of one build for the other.
cross_architectures="arm64 armhf"
cross_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

cross_arch() {
  case ${1:-} in
    arm64) cross_triplet=aarch64-linux-gnu cross_qemu=qemu-aarch64-static ;;
    armhf) cross_triplet=arm-linux-gnueabihf cross_qemu=qemu-arm-static ;;
    *) echo "cross: unknown architecture '${1:-}'; thingmux cross-builds for: $cross_architectures" >&2
       return 2 ;;
  esac
  cross_name=$1
  cross_sysroot=${THINGMUX_SYSROOTS:-/var/cache/thingmux-cross}/$1
  cross_runner=("$cross_qemu" -L "$cross_sysroot")
  cross_host_packages=(g++-"$cross_triplet" binutils-"$cross_triplet" qemu-user-static mmdebstrap
    cmake ninja-build pkg-config debhelper dpkg-dev lintian ccache)
  # CMake (cmake/cross-sysroot.cmake) and qemu read these.
  export THINGMUX_SYSROOT=$cross_sysroot THINGMUX_CROSS_TRIPLET=$cross_triplet THINGMUX_CROSS_QEMU=$cross_qemu
}

# The target's packages in the sysroot: the Build-Depends libraries of packaging/debian/control,
# the C and C++ runtimes, and GoogleTest for scripts/cross-test.sh.
cross_sysroot_packages() {
  {
    echo libc6-dev libstdc++-12-dev libgtest-dev libgmock-dev
    sed -n '/^Build-Depends:/,/^[A-Z][A-Za-z-]*:/p' "$cross_repo/packaging/debian/control" |
      grep -oE '\blib[a-z0-9.+-]+-dev\b'
  } | tr ' ' '\n' | grep -v '^$' | LC_ALL=C sort -u | paste -sd, -
}

cross_suite() { (. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}"); }

cross_require() {
  local missing=()
  command -v "$cross_triplet-g++" >/dev/null || missing+=("the compiler $cross_triplet-g++")
  command -v "$cross_qemu" >/dev/null || missing+=("$cross_qemu")
  [ -f "$cross_sysroot/thingmux-sysroot.txt" ] || missing+=("the sysroot $cross_sysroot")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cross: missing for $cross_name: $(IFS=,; echo "${missing[*]}" | sed 's/,/, /g');" \
         "run: bash scripts/bootstrap.sh --cross $cross_name" >&2
    return 1
  fi
  if [ "$(sed -n 's/^packages: //p' "$cross_sysroot/thingmux-sysroot.txt")" != "$(cross_sysroot_packages)" ]; then
    echo "cross: the sysroot $cross_sysroot was made for other build dependencies;" \
         "run: bash scripts/bootstrap.sh --cross $cross_name" >&2
    return 1
  fi
}

cross_make_sysroot() {
  local mirror=${THINGMUX_CROSS_MIRROR:-http://deb.debian.org/debian} suite packages tmp
  suite=$(cross_suite)
  packages=$(cross_sysroot_packages)
  tmp=$cross_sysroot.new
  if [ "$(id -u)" -ne 0 ] && [ -z "${sudo:-}" ]; then
    echo "cross: making the sysroot $cross_sysroot needs root (mmdebstrap unpacks packages as root)" \
         "and sudo is not installed; run: bash scripts/bootstrap.sh --cross $cross_name as root" >&2
    return 1
  fi
  echo "cross: making the $cross_name sysroot $cross_sysroot from $suite ($mirror): $packages"
  ${sudo:-} rm -rf "$tmp"
  ${sudo:-} mkdir -p "$(dirname "$cross_sysroot")"
  # extract: packages and their dependencies unpacked, no maintainer script run (none could run:
  # they are for another architecture). The downloaded .debs stay for the shlibs below.
  if ! ${sudo:-} mmdebstrap --quiet --variant=extract --architectures="$cross_name" --include="$packages" \
         --skip=cleanup/apt/cache "$suite" "$tmp" "$mirror"; then
    echo "cross: mmdebstrap could not make the sysroot (network, mirror? THINGMUX_CROSS_MIRROR sets it)" >&2
    return 1
  fi
  # dpkg-shlibdeps (packaging/debian/rules) finds these libraries with -l and, since no dpkg
  # database knows them, looks for their dependency information in the DEBIAN/ directory of the
  # tree they are in, as for a package being built: the sysroot's packages' symbols and shlibs.
  local deb part
  ${sudo:-} mkdir -p "$tmp/DEBIAN"
  for part in symbols shlibs; do
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do
      dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - "./$part" 2>/dev/null | grep -v '^udeb:' || true
    done | ${sudo:-} tee "$tmp/DEBIAN/$part" >/dev/null
  done
  {
    echo "architecture: $cross_name"
    echo "suite: $suite"
    echo "mirror: $mirror"
    echo "packages: $packages"
    echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb"; done
  } | ${sudo:-} tee "$tmp/thingmux-sysroot.txt" >/dev/null
  ${sudo:-} rm -rf "$tmp"/var/cache/apt/archives/*.deb
  ${sudo:-} rm -rf "$cross_sysroot"
  ${sudo:-} mv "$tmp" "$cross_sysroot"
  echo "cross: sysroot ready: $(du -sh "$cross_sysroot" | cut -f1), $(sed '1,/^made: /d' "$cross_sysroot/thingmux-sysroot.txt" | wc -l) packages"
}
