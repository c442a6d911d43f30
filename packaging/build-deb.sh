#!/usr/bin/env bash
# Builds the Debian packages thingmuxd, libthingmux2 and libthingmux-dev from this working tree
# (committed or not) and puts them in OUTPUT_DIR (default: build-deb/ at the top of the tree),
# with the debug symbols packages, the .changes and .buildinfo that list them all (so that
# lintian, debsign and dput work on the .changes) and source-files.txt, the list of source files.
#   bash packaging/build-deb.sh [--arch ARCH] [OUTPUT_DIR]
# --arch arm64|armhf cross-builds for that architecture against the sysroot that
# `scripts/bootstrap.sh --cross ARCH` makes (docs/packaging.md); without it, or with this machine's
# own architecture, the packages are for this machine. Each architecture's files replace only
# that architecture's earlier ones in OUTPUT_DIR.
# It copies the tracked and untracked-but-not-ignored files (no build*/ directories) into a
# scratch directory, adds packaging/debian/ as debian/ and runs dpkg-buildpackage -us -uc -b.
# Parallel jobs: DEB_BUILD_OPTIONS=parallel=N (default: the number of processors).
# THINGMUX_DEB_KEEP=1 keeps the scratch directory; THINGMUX_DEB_CCACHE=0 compiles without ccache. Needs the packages of scripts/bootstrap.sh.
set -euo pipefail
# shellcheck source=../scripts/lib/help.sh
. "$(dirname "$0")/../scripts/lib/help.sh"

repo=$(cd "$(dirname "$0")/.." && pwd)
native=$(dpkg --print-architecture)
arch=$native
out=
while [ $# -gt 0 ]; do
  case $1 in
    --arch) [ $# -ge 2 ] || { echo "build-deb: --arch needs an architecture (arm64 or armhf)" >&2; exit 2; }
            arch=$2; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    -h | --help) script_help "$0"; exit 0 ;;
    -*) echo "build-deb: unknown option '$1' (use --arch ARCH, then OUTPUT_DIR)" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "build-deb: one OUTPUT_DIR only ('$out', '$1')" >&2; exit 2; }; out=$1; shift ;;
  esac
done
out=${out:-$repo/build-deb}
cross=()
if [ "$arch" != "$native" ]; then
  # shellcheck source=../scripts/lib/cross.sh
  . "$repo/scripts/lib/cross.sh"
  cross_arch "$arch" || exit 2
  cross_require || exit 1
  # -d: the build dependencies are the sysroot's (cross_require checked it), not installed packages.
  # nocheck: nothing to test in this build (debian/rules); CC names the compiler for dpkg-architecture.
  cross=(-a "$arch" -d)
  export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }nocheck" CC=$cross_triplet-gcc CXX=$cross_triplet-g++
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dpkg-parsechangelog dh; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool not found; run scripts/bootstrap.sh" >&2; exit 1; }
done

# One version: CMake's project(VERSION) is the source of truth; the changelog must agree.
version=$(sed -n 's/^project(thingmux VERSION \([0-9][0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
if [ -z "$version" ] || [ "$version" != "$deb_version" ]; then
  echo "build-deb: CMakeLists.txt says version '${version}', packaging/debian/changelog says '${deb_version}';" \
       "add a changelog entry for ${version}" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-deb.XXXXXX")
if [ "${THINGMUX_DEB_KEEP:-0}" = 1 ]; then
  echo "build-deb: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
src=$work/thingmux-$version
mkdir -p "$src"

# The working tree as git sees it, without build directories; a plain copy outside git.
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      case $f in build*/*) continue ;; esac
      # Tracked files deleted in the working tree are not part of it.
      if [ -e "$repo/$f" ] || [ -L "$repo/$f" ]; then printf '%s\0' "$f"; fi
    done | tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf -
else
  tar -C "$repo" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$src/packaging/debian" "$src/debian"
# What went into the build (test-deb.sh compares the packages with it).
(cd "$src" && find . \( -type f -o -type l \) -not -path './debian/*' | sed 's|^\./||' | LC_ALL=C sort) >"$work/source-files.txt"

case " ${DEB_BUILD_OPTIONS:-} " in
  *" parallel="*) ;;
  *) export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac

# ccache, when installed (THINGMUX_DEB_CCACHE=0: not): scripts/build.sh compiles the same sources
# with the same flags (dpkg-buildflags) and the same generator, so with paths taken relative to
# the top of each tree, the working directory and the -ffile-prefix-map left out of the key, a tree
# built before makes this build a matter of linking. debhelper points HOME elsewhere: the cache
# directory is named explicitly. ccache hashes the locale variables: debhelper sets LC_ALL to
# C.UTF-8, and scripts/build.sh sets the same.
cache_note=
if [ "${THINGMUX_DEB_CCACHE:-1}" = 1 ] && command -v ccache >/dev/null; then
  CCACHE_DIR=$(ccache -k cache_dir)
  export CCACHE_DIR THINGMUX_CCACHE=1 CCACHE_BASEDIR=$src CCACHE_NOHASHDIR=1 CCACHE_IGNOREOPTIONS='-ffile-prefix-map=*' \
    LANG=C.UTF-8 LC_ALL=C.UTF-8
  unset LC_CTYPE LC_MESSAGES
  ccache -z >/dev/null
  cache_note=", ccache $CCACHE_DIR"
fi

log=$out/build-deb-$arch.log
echo "build-deb: building thingmux $version for $arch${cross:+ (cross, sysroot $THINGMUX_SYSROOT)} in $src (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS$cache_note); log: $log"
start=$(date +%s)
if ! (cd "$src" && dpkg-buildpackage -us -uc -b "${cross[@]}") >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "build-deb: dpkg-buildpackage failed; the whole log is $log" >&2
  exit 1
fi

# Replace the previous results (an older version next to the new one would confuse apt and
# lintian). Everything goes to OUTPUT_DIR: a .changes names its files without a directory, so
# they must sit next to it. To install the packages without the debug symbols:
#   apt install ./thingmuxd_*.deb ./libthingmux2_*.deb ./libthingmux-dev_*.deb
for p in thingmuxd libthingmux2 libthingmux-dev thingmuxd-dbgsym libthingmux2-dbgsym; do
  rm -f "$out/${p}_"*"_$arch.deb"
done
rm -f "$out"/thingmux_*_"$arch".changes "$out"/thingmux_*_"$arch".buildinfo "$out"/source-files.txt "$out"/build-deb.log
# The layout of earlier versions of this script: debug symbols, .changes and .buildinfo in extra/.
if [ -d "$out/extra" ]; then
  rm -f "$out"/extra/*-dbgsym_*.deb "$out"/extra/thingmux_*.changes "$out"/extra/thingmux_*.buildinfo \
        "$out"/extra/source-files.txt
  rmdir "$out/extra" 2>/dev/null || true
fi
cp "$work/source-files.txt" "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out/"
if [ -n "$cache_note" ]; then
  echo "build-deb: compiler calls taken from ccache: $(ccache --print-stats | awk -F'\t' '$1 == "direct_cache_hit" || $1 == "preprocessed_cache_hit" { hit += $2 } $1 == "cache_miss" { miss = $2 } END { printf "%d of %d", hit, hit + miss }')"
fi
echo "build-deb: done in $(( $(date +%s) - start ))s:"
(cd "$out" && ls -1 ./*_"$arch".deb ./*_"$arch".changes)
