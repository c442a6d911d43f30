#!/usr/bin/env bash
# Configures and builds thingmux into build/ (executables in build/bin/, tests in build/tests/).
# Extra arguments go to the CMake configure step, e.g. -DTHINGMUX_SANITIZE=ON.
# THINGMUX_BUILD_DIR: the build directory (default build); THINGMUX_BUILD_TARGET: build only this
# target (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${THINGMUX_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && [ ! -f "$build_dir/CMakeCache.txt" ] && generator=(-G Ninja)
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
echo "build: compiling into $build_dir/ (this takes a few minutes on a small machine)"
target=()
[[ -n ${THINGMUX_BUILD_TARGET:-} ]] && target=(--target "$THINGMUX_BUILD_TARGET")
cmake --build "$build_dir" --parallel "$(nproc)" "${target[@]}"
