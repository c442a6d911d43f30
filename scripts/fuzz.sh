#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one for a bounded time
# on a scratch copy of its seed corpus. Findings (crash-*, leak-*, timeout-*) land in
# build-fuzz/findings/ and fail the run: fix the bug, then add the input to tests/fuzz/corpus/.
#   FUZZ_SECONDS=60 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTHINGMUX_FUZZ=ON -DTHINGMUX_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --parallel "$(nproc)"
mkdir -p build-fuzz/findings
status=0
for target in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$target")
  # Seeds: tests/fuzz/corpus/<name without fuzz_> when it exists, else the module's
  # (fuzz_mqtt_decode: tests/fuzz/corpus/mqtt).
  corpus_name=${name#fuzz_}
  [[ -d tests/fuzz/corpus/$corpus_name ]] || corpus_name=${corpus_name%%_*}
  work=build-fuzz/corpus/$name
  rm -rf "$work"; mkdir -p "$work"
  cp tests/fuzz/corpus/"$corpus_name"/* "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s (seeds: tests/fuzz/corpus/$corpus_name)"
  if ! "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix=build-fuzz/findings/"$name"- "$work" > build-fuzz/"$name".log 2>&1; then
    echo "fuzz: $name FOUND A PROBLEM; log: build-fuzz/$name.log, inputs: build-fuzz/findings/" >&2
    tail -40 build-fuzz/"$name".log >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units' build-fuzz/"$name".log | sed "s/^/fuzz: $name /" || true
  fi
done
exit $status
