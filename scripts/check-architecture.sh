#!/usr/bin/env bash
# Checks the dependency rules of docs/architecture.md on the #include lines of the source tree:
#   pure        daemon/mqtt, ipc, common and config include no Asio (Boost.Asio), OpenSSL, sd-bus or
#               other systemd headers, SQLite or spdlog;
#   yaml-cpp    only config/ includes yaml-cpp (of the modules: common, config, daemon, ipc, libclient);
#   libclient   libclient/ includes no daemon/ code;
#   spool       daemon/spool includes only the standard library, SQLite, and ipc/ and common/;
#   thing       daemon/thing (the per-Thing pipeline) includes no Asio, OpenSSL, sd-bus or other
#               systemd headers, or SQLite: it reaches the world through its ports only.
# A rule holds through the project's own headers too: a file of daemon/mqtt that includes a
# header of another module which includes OpenSSL breaks the rule at its #include line, and the
# report names the header that does. Each #include line is reported once per rule, with the first
# forbidden header found behind it.
#
# Usage: scripts/check-architecture.sh [ROOT]   (ROOT: the source tree, by default this script's)
# Prints one line per broken rule, "FILE:LINE: RULE: includes HEADER [through A:N -> B:M]", and
# exits 1 when there is any; exits 0 with a summary line when there is none. CTest runs it as
# `architecture_check` (tests/architecture/).
set -euo pipefail

root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
cd "$root"

modules=(common config daemon ipc libclient)
for m in "${modules[@]}"; do
    [ -d "$m" ] || { echo "check-architecture: $root/$m is missing; is $root a thingmux source tree?" >&2; exit 2; }
done

mapfile -t files < <(find "${modules[@]}" -type f \( -name '*.cpp' -o -name '*.cc' -o -name '*.c' -o -name '*.hpp' -o -name '*.h' \) | LC_ALL=C sort)

# awk reads the file list first (one name a line), then every file; it resolves quoted includes to
# files of the tree and walks them depth-first from each file that a rule applies to.
printf '%s\n' "${files[@]}" | awk -v listed="${#files[@]}" '
function module_of(f) {
    if (f ~ /^daemon\/mqtt\//) return "mqtt"
    if (f ~ /^daemon\/spool\//) return "spool"
    if (f ~ /^daemon\/thing\//) return "thing"
    if (f ~ /^ipc\//) return "ipc"
    if (f ~ /^common\//) return "common"
    if (f ~ /^config\//) return "config"
    if (f ~ /^libclient\//) return "libclient"
    return "daemon"
}
function dir_of(f) { return f ~ /\// ? substr(f, 1, match(f, /\/[^\/]*$/) - 1) : "" }
# The file of the tree a quoted include names, or "".
function resolve(from, target,    d, c) {
    if (target in known) return target
    d = dir_of(from)
    c = (d == "" ? target : d "/" target)
    if (c in known) return c
    if (from ~ /^libclient\//) {
        if (("libclient/include/" target) in known) return "libclient/include/" target
        if (("libclient/src/" target) in known) return "libclient/src/" target
    }
    return ""
}
# The rule an include of `target` (kind "<" or "\"") breaks in a file of module `m`, or "".
function broken_rule(m, target, kind) {
    if (m == "mqtt" || m == "ipc" || m == "common" || m == "config") {
        if (kind == "<" && (target ~ /^boost\/asio([.\/]|$)/ || target ~ /^asio([.\/]|$)/)) return "pure module includes Asio"
        if (kind == "<" && target ~ /^openssl\//) return "pure module includes OpenSSL"
        if (kind == "<" && target ~ /^systemd\//) return "pure module includes sd-bus/systemd"
        if (kind == "<" && target ~ /^sqlite3\.h$/) return "pure module includes SQLite"
        if (kind == "<" && target ~ /^spdlog\//) return "pure module includes spdlog"
    }
    if (m == "thing") {
        if (kind == "<" && (target ~ /^boost\/asio([.\/]|$)/ || target ~ /^asio([.\/]|$)/)) return "the pipeline includes Asio"
        if (kind == "<" && target ~ /^openssl\//) return "the pipeline includes OpenSSL"
        if (kind == "<" && target ~ /^systemd\//) return "the pipeline includes sd-bus/systemd"
        if (kind == "<" && target ~ /^sqlite3\.h$/) return "the pipeline includes SQLite"
    }
    if (m != "config" && kind == "<" && target ~ /^yaml-cpp\//) return "only config/ includes yaml-cpp"
    if (m == "libclient" && kind == "\"" && target ~ /^daemon\//) return "libclient includes no daemon code"
    if (m == "spool") {
        if (kind == "<" && (target == "sqlite3.h" || target !~ /[.\/]/)) return ""
        if (kind == "\"" && target ~ /^(daemon\/spool|ipc|common)\//) return ""
        return "daemon/spool includes only the standard library, SQLite, ipc/ and common/"
    }
    return ""
}
# Checks file `f` (module m) and, through the tree headers it includes, what they include.
function walk(top, m, f, first_line, via,    i, t, r, hop) {
    if (f in seen) return
    seen[f] = 1
    for (i = 1; i <= count[f]; i++) {
        t = inc_target[f, i]
        hop = (via == "" ? "" : via " -> ") f ":" inc_line[f, i]
        r = broken_rule(m, t, inc_kind[f, i])
        if (r != "") {
            line = (f == top ? inc_line[f, i] : first_line)
            key = top SUBSEP line SUBSEP r  # one line per #include line and rule: its first cause
            if (!(key in reported)) {
                reported[key] = 1
                printf "%s:%s: %s: includes %s%s\n", top, line, r, (inc_kind[f, i] == "<" ? "<" t ">" : "\"" t "\""), \
                    (f == top ? "" : " [through " hop "]")
                ++violations
            }
        }
        if (r != "") continue  # what a forbidden header includes adds nothing to the report
        if (inc_kind[f, i] == "\"" && (r = resolve(f, t)) != "") {
            walk(top, m, r, (f == top ? inc_line[f, i] : first_line), (f == top ? "" : hop))
        }
    }
}
NR <= listed { known[$0] = 1; order[NR] = $0; next }
FNR == 1 { current = FILENAME; count[current] = 0 }
/^[ \t]*#[ \t]*include[ \t]*[<"]/ {
    s = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", s)
    kind = substr(s, 1, 1)
    close_char = (kind == "<" ? ">" : "\"")
    s = substr(s, 2)
    end = index(s, close_char)
    if (end == 0) next
    n = ++count[current]
    inc_target[current, n] = substr(s, 1, end - 1)
    inc_kind[current, n] = kind
    inc_line[current, n] = FNR
}
END {
    violations = 0
    for (k = 1; k <= listed; k++) {
        f = order[k]
        delete seen
        walk(f, module_of(f), f, 0, "")
    }
    if (violations > 0) {
        printf "check-architecture: %d include(s) break the module rules (docs/architecture.md)\n", violations
        exit 1
    }
    printf "check-architecture: %d files, every include within the module rules\n", listed
}
' - "${files[@]}"
