#!/usr/bin/env bash
# Regenerates the spool fixtures of thingmux 0.1.0 in this directory with the 0.1.0 code itself:
# exports commit 9ddd1ee (the last one with spool schema 1), builds its spool and IPC libraries,
# and runs make_spool_0.1.0.cpp against them. See README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
release=9ddd1ee
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git -C "$repo" archive "$release" | tar -x -C "$work/src"
cmake -S "$work/src" -B "$work/build" -DTHINGMUX_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/build" --target thingmux_spool thingmux_ipc >/dev/null
lib="$work/build/lib"
c++ -std=c++20 -O1 -I "$work/src" "$here/make_spool_0.1.0.cpp" \
  "$lib/libthingmux_spool.a" "$lib/libthingmux_ipc.a" "$lib/libthingmux_common.a" -lsqlite3 -o "$work/make_spool_0.1.0"
"$work/make_spool_0.1.0" "$here"
echo "wrote $here/spool-0.1.0.sqlite and $here/spool-0.1.0-unreadable-rows.sqlite (code of $release)"
