#!/usr/bin/env bash
# scripts/check-architecture.sh must fail, naming the file, the line and the rule, for each kind
# of forbidden include. Runs it on a copy of the tree with one probe file added at a time (a new
# file, so the test does not depend on what the real files include); the copy without a probe
# must pass.
set -euo pipefail

root=${1:?usage: check_architecture_test.sh SOURCE_ROOT}
work=$(mktemp -d "${TMPDIR:-/tmp}/architecture-check-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts"
cp -r "$root"/common "$root"/config "$root"/daemon "$root"/ipc "$root"/libclient "$work/"
cp "$root/scripts/check-architecture.sh" "$work/scripts/"

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

out=$(bash "$work/scripts/check-architecture.sh" "$work" 2>&1) || fail "the unchanged copy does not pass: $out"

# expect_violation PROBE_FILE 'PROBE CONTENT' 'EXPECTED LINE PREFIX' [HELPER_FILE 'HELPER CONTENT']
expect_violation() {
    local probe=$1 content=$2 expected=$3 helper=${4:-} helper_content=${5:-}
    printf '%s\n' "$content" >"$work/$probe"
    [ -z "$helper" ] || printf '%s\n' "$helper_content" >"$work/$helper"
    local rc=0
    out=$(bash "$work/scripts/check-architecture.sh" "$work" 2>&1) || rc=$?
    rm -f "$work/$probe"
    [ -z "$helper" ] || rm -f "$work/$helper"
    if [ "$rc" -ne 1 ]; then
        fail "$probe: exit status $rc, expected 1; output: $out"
    elif ! grep -qF -- "$expected" <<<"$out"; then
        fail "$probe: no line starting '$expected' in: $out"
    else
        echo "ok: $(grep -F -- "$expected" <<<"$out" | head -1)"
    fi
}

expect_violation daemon/mqtt/probe.hpp $'#pragma once\n#include <boost/asio/io_context.hpp>' \
    'daemon/mqtt/probe.hpp:2: pure module includes Asio: includes <boost/asio/io_context.hpp>'
expect_violation ipc/probe.cpp $'// probe\n\n#include <openssl/ssl.h>' \
    'ipc/probe.cpp:3: pure module includes OpenSSL: includes <openssl/ssl.h>'
expect_violation common/probe.hpp '#include <systemd/sd-bus.h>' \
    'common/probe.hpp:1: pure module includes sd-bus/systemd: includes <systemd/sd-bus.h>'
expect_violation config/probe.cpp $'#include "config/config.hpp"\n#include <sqlite3.h>' \
    'config/probe.cpp:2: pure module includes SQLite: includes <sqlite3.h>'
expect_violation daemon/mqtt/probe.cpp '  #  include <spdlog/spdlog.h>' \
    'daemon/mqtt/probe.cpp:1: pure module includes spdlog: includes <spdlog/spdlog.h>'
expect_violation daemon/hub/probe.cpp '#include <yaml-cpp/yaml.h>' \
    'daemon/hub/probe.cpp:1: only config/ includes yaml-cpp: includes <yaml-cpp/yaml.h>'
expect_violation libclient/src/probe.cpp $'#include "thingmux/client.hpp"\n#include "daemon/mqtt/packet.hpp"' \
    'libclient/src/probe.cpp:2: libclient includes no daemon code: includes "daemon/mqtt/packet.hpp"'
expect_violation daemon/spool/probe.cpp $'#include <sqlite3.h>\n#include <string>\n#include <fcntl.h>' \
    'daemon/spool/probe.cpp:3: daemon/spool includes only the standard library, SQLite, ipc/ and common/: includes <fcntl.h>'
expect_violation daemon/spool/probe.hpp '#include "daemon/mqtt/packet.hpp"' \
    'daemon/spool/probe.hpp:1: daemon/spool includes only the standard library, SQLite, ipc/ and common/: includes "daemon/mqtt/packet.hpp"'
expect_violation daemon/thing/probe.cpp $'#include "daemon/thing/pipeline.hpp"\n#include <boost/asio/steady_timer.hpp>' \
    'daemon/thing/probe.cpp:2: the pipeline includes Asio: includes <boost/asio/steady_timer.hpp>'
expect_violation daemon/thing/probe.hpp '#include "daemon/uplink/uplink.hpp"' \
    'daemon/thing/probe.hpp:1: the pipeline includes Asio'
# Through a header of another module: the pure file breaks the rule at its own #include line.
expect_violation daemon/mqtt/probe.hpp $'#pragma once\n#include "daemon/uplink/probe_tls.hpp"' \
    'daemon/mqtt/probe.hpp:2: pure module includes OpenSSL: includes <openssl/ssl.h> [through daemon/uplink/probe_tls.hpp:3]' \
    daemon/uplink/probe_tls.hpp $'#pragma once\n#include <string>\n#include <openssl/ssl.h>'
# Relative to the including file, as the compiler finds it.
expect_violation common/probe.hpp '#include "probe_inner.hpp"' \
    'common/probe.hpp:1: pure module includes spdlog: includes <spdlog/spdlog.h> [through common/probe_inner.hpp:1]' \
    common/probe_inner.hpp '#include <spdlog/spdlog.h>'

if [ "$failures" -ne 0 ]; then
    echo "$failures case(s) failed"
    exit 1
fi
echo "every forbidden include was reported"
