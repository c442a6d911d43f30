#!/bin/bash
# Usage: run_consumer_test.sh BUILD_DIR LIBTHINGMUX_SO PROJECT_DIR CXX
# Installs libthingmux from BUILD_DIR into a temporary prefix, then builds the consumer in
# PROJECT_DIR against it twice: with CMake (find_package) and with pkg-config. Neither build asks
# for a C++ standard; both use -Wall -Wextra -Werror. Exits non-zero naming what failed.
set -euo pipefail
build=$1 so=$2 project=$3 cxx=$4
work=$(mktemp -d /tmp/thingmux-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" --component dev >/dev/null
# The runtime component also holds the programs, which this test does not build: copy the
# library and its SONAME link next to the dev component's namelink.
libdir=$(dirname "$(readlink -f "$(find "$prefix" -name libthingmux.so -print -quit)")")
cp -a "$(dirname "$so")"/libthingmux.so.* "$libdir"/

# The exported target lists its include directory once.
targets=$(find "$prefix" -name thingmuxTargets.cmake -print -quit)
includes=$(grep -o 'INTERFACE_INCLUDE_DIRECTORIES "[^"]*"' "$targets")
if [ "$(grep -o 'include' <<<"$includes" | wc -l)" -ne 1 ]; then
    echo "FAIL: the exported target lists its include directory more than once: $includes" >&2
    exit 1
fi
grep -q 'INTERFACE_COMPILE_FEATURES "cxx_std_20"' "$targets" ||
    { echo "FAIL: the exported target does not carry cxx_std_20" >&2; exit 1; }

echo "== CMake consumer"
cmake -S "$project" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$work/cmake-build" --verbose | grep -e '-std=' >/dev/null ||
    { echo "FAIL: the CMake build did not get a -std flag from the target" >&2; exit 1; }
LD_LIBRARY_PATH=$libdir "$work/cmake-build/consumer" --self-test

echo "== pkg-config consumer"
pcdir=$(dirname "$(find "$prefix" -name thingmux.pc -print -quit)")
export PKG_CONFIG_PATH=$pcdir
flags=$(pkg-config --define-variable=prefix="$prefix" --cflags thingmux)
libs=$(pkg-config --define-variable=prefix="$prefix" --libs thingmux)
# shellcheck disable=SC2086
"$cxx" -Wall -Wextra -Werror $flags "$project/consumer.cpp" -o "$work/consumer-pc" $libs
LD_LIBRARY_PATH=$libdir "$work/consumer-pc" --self-test
echo "consumer builds: ok"
