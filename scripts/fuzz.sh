#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one for a bounded time
# on a scratch copy of its seed corpus. Findings (crash-*, leak-*, timeout-*) land in
# build-fuzz/findings/ and fail the run: fix the bug, then add the input to tests/fuzz/corpus/.
#   FUZZ_SECONDS=60 scripts/fuzz.sh     (FUZZ_JOBS=N: targets run at once, default: processors)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTHINGMUX_FUZZ=ON -DTHINGMUX_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --parallel "$(nproc)"
mkdir -p build-fuzz/findings
# One target per processor at a time: each still gets its full time, the run takes less.
jobs=${FUZZ_JOBS:-$(nproc)}
run_one() {  # run_one TARGET: exit status 1 when the fuzzer found a problem
  local target=$1 name corpus_name work
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
    return 1
  fi
  grep -E '^stat::number_of_executed_units' build-fuzz/"$name".log | sed "s/^/fuzz: $name /" || true
}
status=0
for target in build-fuzz/fuzz/fuzz_*; do
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || status=1; done
  run_one "$target" &
done
# Every job's status, including those that ended before anyone waited (127: none left).
while :; do
  wait -n && rc=0 || rc=$?
  ((rc == 127)) && break
  ((rc == 0)) || status=1
done
exit $status
