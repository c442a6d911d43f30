#!/usr/bin/env bash
# Checks the hand-written manual pages of docs/man/ against what they describe, so that they
# cannot silently fall behind the programs:
#   render PAGE...                 man and groff render each page without a warning (lintian runs
#                                  the same groff checks on the packages)
#   options PAGE PROGRAM           every option PROGRAM --help lists appears in PAGE; and for a
#                                  program with subcommands, every subcommand (recursively) has a
#                                  .SS section in PAGE that names each of its options
#   config-keys PAGE CONFIG_MD     every key docs/config.md lists in the first column of a table
#                                  appears in PAGE (thingmux.yaml(5))
#   text VERSION PAGE...           .TH names thingmux VERSION; the text names installed paths
#                                  (/usr/share/doc/thingmuxd/docs/x.md), never the source tree's
#                                  docs/x.md alone
# Each prints one line per problem and exits 1 when there is one.
set -euo pipefail

export LC_ALL=C.UTF-8
problems=0
problem() { echo "$*" >&2; problems=$((problems + 1)); }

# The roff source as plain words: \- is -, font changes and zero-width escapes are dropped.
plain_source() {
  sed -e '/^\.\\"/d' -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(CW//g' -e 's/\\[c&]//g' -e 's/\\(dq/"/g' -e "s/\\\\(aq/'/g" "$1"
}

# Whether TEXT (stdin) holds OPTION as a whole word: "-W" is not found in "-Wall" or "x-W".
holds_option() {
  local o=$1
  grep -qE -- "(^|[^-A-Za-z0-9])${o//./\\.}([^-A-Za-z0-9]|\$)"
}

# PROGRAM ARGS... --help, parsed: the option names (short and long) and the subcommands.
help_options() {  # CLI11 lists options as "  -t,--topic TEXT ..." under "Options:"
  "$@" --help | awk '/^[A-Za-z].*:$/ { section = $0; next }
                     section == "Options:" && /^  -/ { n = split($1, names, ","); for (i = 1; i <= n; i++) print names[i] }'
}
help_subcommands() {
  "$@" --help | awk '/^[A-Za-z].*:$/ { section = $0; next }
                     section == "Subcommands:" && /^  [a-z]/ { print $1 }'
}

# The lines of PAGE's .SS section(s) whose heading names the subcommand path (e.g. "shadow get"
# in ".SS shadow get, shadow update, ..."), up to the next .SS or .SH.
subcommand_section() {
  local page=$1 path=$2
  plain_source "$page" | awk -v path="$path" '
    /^\.S[SH] / {
      heading = substr($0, 5); gsub(/"/, "", heading)
      n = split(heading, parts, /, */); inside = 0
      for (i = 1; i <= n; i++) if (parts[i] == path) inside = 1
      if (inside) found = 1
      next
    }
    inside { print }
    END { if (!found) exit 1 }'
}

check_render() {
  local page out
  for page in "$@"; do
    out=$(groff -man -ww -z "$page" 2>&1) || problem "$page: groff failed"
    [ -z "$out" ] || problem "$page: groff -man -ww -z: $out"
    out=$(MANWIDTH=80 man --warnings -l -Tutf8 "$page" 2>&1 >/dev/null) || problem "$page: man -l failed"
    [ -z "$out" ] || problem "$page: man --warnings: $out"
    [ "$(MANWIDTH=80 man -l -Tutf8 "$page" 2>/dev/null | wc -l)" -gt 20 ] || problem "$page: renders to almost nothing"
  done
}

# Recursively: each subcommand of PROGRAM [PATH...] has a section naming its options.
check_subcommands() {
  local page=$1 program=$2; shift 2
  local sub path section o own_options
  while read -r sub; do
    path="${*:+$* }$sub"
    # shellcheck disable=SC2086  # the path is words
    own_options=$(help_options "$program" $path | grep -vxE -- '-h|--help' || true)
    if ! section=$(subcommand_section "$page" "$path"); then
      # A group of subcommands ("shadow") with no options of its own may be described only
      # through its subcommands' sections ("shadow get").
      # shellcheck disable=SC2086
      if [ -n "$own_options" ] || [ -z "$(help_subcommands "$program" $path)" ]; then
        problem "$page: no .SS section for the subcommand '$path' ($program ${path} --help lists it)"
        continue
      fi
    fi
    while read -r o; do
      [ -n "$o" ] || continue
      holds_option "$o" <<<"$section" || problem "$page: section '$path' does not name its option $o"
    done <<<"$own_options"
    # shellcheck disable=SC2086  # the path is words
    check_subcommands "$page" "$program" $path
  done < <(help_subcommands "$program" "$@")
}

check_options() {
  local page=$1 program=$2 text o count=0
  text=$(plain_source "$page")
  while read -r o; do
    count=$((count + 1))
    holds_option "$o" <<<"$text" || problem "$page: does not name option $o (${program##*/} --help lists it)"
  done < <(help_options "$program")
  [ "$count" -gt 1 ] || problem "$program --help lists no options: cannot check $page"
  check_subcommands "$page" "$program"
}

check_config_keys() {
  local page=$1 config_md=$2 text key count=0
  text=$(plain_source "$page")
  # First table cells: "| `key` | ..." and "| `a`, `b` | ...": each backquoted lower-case name.
  while read -r key; do
    count=$((count + 1))
    grep -qE "(^|[^a-z0-9_])${key}([^a-z0-9_]|\$)" <<<"$text" ||
      problem "$page: does not describe the key '$key' of $config_md"
  done < <(grep -E '^\| `' "$config_md" | cut -d'|' -f2 | grep -oE '`[a-z][a-z0-9_]*`' | tr -d '`' | sort -u)
  [ "$count" -gt 50 ] || problem "$config_md: only $count keys found in its tables: cannot check $page"
}

check_text() {
  local version=$1; shift
  local page
  for page in "$@"; do
    grep -qE "^\.TH [^ ]+ [0-9] [0-9-]+ \"thingmux ${version//./\\.}\"" "$page" ||
      problem "$page: .TH does not name thingmux $version"
    # docs/x.md only as part of /usr/share/doc/thingmuxd/docs/x.md.
    plain_source "$page" | grep -nE '(^|[^/a-z])docs/' | sed "s|^|$page: names a source tree path (write the installed one): |" >&2 &&
      problems=$((problems + 1)) || true
  done
}

case ${1:-} in
  render) shift; check_render "$@" ;;
  options) check_options "$2" "$3" ;;
  config-keys) check_config_keys "$2" "$3" ;;
  text) shift; check_text "$@" ;;
  *) echo "usage: $0 render PAGE... | options PAGE PROGRAM | config-keys PAGE CONFIG_MD | text VERSION PAGE..." >&2; exit 2 ;;
esac
if [ "$problems" -gt 0 ]; then
  echo "$problems problem(s)" >&2
  exit 1
fi
echo "ok"
