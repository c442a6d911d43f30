#!/usr/bin/env bash
# Configures and builds thingmux into build/ (executables in build/bin/, tests in build/tests/).
# Extra arguments go to the CMake configure step, e.g. -DTHINGMUX_SANITIZE=ON.
#   THINGMUX_BUILD_DIR     the build directory (default build)
#   THINGMUX_BUILD_TARGET  build only these targets, separated by spaces (default: all)
#   THINGMUX_BUILD_FLAGS   debian (default where dpkg-buildflags exists): the compiler flags the
#                          Debian package is built with (-O2 -g, hardening, asserts on), so the
#                          tests run the code that ships; cmake: CMake's RelWithDebInfo;
#                          sanitize: -O1 -g1, what scripts/sanitize.sh uses (line numbers in
#                          reports, a faster compile).
# With ccache installed every compile goes through it, with paths relative to the top of the tree,
# so that packaging/build-deb.sh, which compiles the same sources with the same flags elsewhere,
# takes its objects from the cache instead of compiling the project a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${THINGMUX_BUILD_DIR:-build}
flags=${THINGMUX_BUILD_FLAGS:-}
if [[ -z $flags ]]; then
  if command -v dpkg-buildflags >/dev/null; then flags=debian; else flags=cmake; fi
fi

configure=()
[[ -f $build_dir/CMakeCache.txt ]] || ! command -v ninja >/dev/null || configure+=(-G Ninja)
case $flags in
  debian)
    # Exactly what debhelper gives CMake for packaging/debian/rules (its hardening options; CPPFLAGS
    # after CXXFLAGS; build type None, so CMake adds nothing).
    maint_options=$(sed -n 's/^export DEB_BUILD_MAINT_OPTIONS = //p' packaging/debian/rules)
    buildflag() { DEB_BUILD_MAINT_OPTIONS=$maint_options dpkg-buildflags --get "$1"; }
    configure+=(-DCMAKE_BUILD_TYPE=None
      "-DCMAKE_CXX_FLAGS=$(buildflag CXXFLAGS) $(buildflag CPPFLAGS)"
      "-DCMAKE_C_FLAGS=$(buildflag CFLAGS) $(buildflag CPPFLAGS)"
      "-DCMAKE_EXE_LINKER_FLAGS=$(buildflag LDFLAGS)"
      "-DCMAKE_SHARED_LINKER_FLAGS=$(buildflag LDFLAGS)"
      "-DCMAKE_MODULE_LINKER_FLAGS=$(buildflag LDFLAGS)") ;;
  cmake) configure+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  sanitize) configure+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG") ;;
  *) echo "build: THINGMUX_BUILD_FLAGS is '$flags'; use debian, cmake or sanitize" >&2; exit 2 ;;
esac
if command -v ccache >/dev/null; then
  configure+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  # The cache key leaves out where the tree is: see packaging/build-deb.sh. ccache also hashes
  # the locale variables, which debhelper sets to C.UTF-8.
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1 CCACHE_IGNOREOPTIONS='-ffile-prefix-map=*' LANG=C.UTF-8 LC_ALL=C.UTF-8
  unset LC_CTYPE LC_MESSAGES
fi
cmake -S . -B "$build_dir" "${configure[@]}" "$@" >/dev/null
echo "build: compiling into $build_dir/ with $flags flags (this takes a few minutes on a small machine)"
target=()
# shellcheck disable=SC2206
[[ -n ${THINGMUX_BUILD_TARGET:-} ]] && target=(--target $THINGMUX_BUILD_TARGET)
cmake --build "$build_dir" --parallel "$(nproc)" "${target[@]}"
