#!/usr/bin/env bash
# The checks of check_manual_pages.sh fail when a page falls behind: each case removes one thing
# from a copy of a page (or breaks its roff) and expects the check to fail naming it.
#   check_manual_pages_test.sh SOURCE_DIR THINGMUXCTL THINGMUXD
set -euo pipefail

src=$1 ctl=$2 daemon=$3
check=$src/tests/docs/check_manual_pages.sh
man=$src/docs/man
tmp=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-man-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0 cases=0
expect_failure() {  # expect_failure WHAT EXPECTED_TEXT CHECK_ARGS...
  local what=$1 expected=$2; shift 2
  cases=$((cases + 1))
  if bash "$check" "$@" >"$tmp/out" 2>&1; then
    echo "FAIL: $what: the check passed"; failures=$((failures + 1))
  elif ! grep -qF -- "$expected" "$tmp/out"; then
    echo "FAIL: $what: the check failed without naming '$expected':"; sed 's/^/  /' "$tmp/out"
    failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
without() {  # without PAGE SED_ADDRESS NAME: a copy of PAGE without the lines SED_ADDRESS selects
  sed "$2d" "$man/$1" >"$tmp/$3"
  if cmp -s "$man/$1" "$tmp/$3"; then echo "FAIL: $1: '$2' selects nothing; update this test"; exit 1; fi
}

# The untouched pages pass, so that a failure below is the change's.
bash "$check" options "$man/thingmuxctl.1" "$ctl" >/dev/null
bash "$check" options "$man/thingmuxd.8" "$daemon" >/dev/null

without thingmuxctl.1 '/^\.B \\-\\-quiet$/' no-quiet.1
expect_failure "a pub option missing from thingmuxctl.1" "section 'pub' does not name its option --quiet" \
  options "$tmp/no-quiet.1" "$ctl"
without thingmuxctl.1 '/^\.B \\-\\-documents$/' no-documents.1
expect_failure "an option of a nested subcommand missing from thingmuxctl.1" \
  "section 'shadow watch' does not name its option --documents" options "$tmp/no-documents.1" "$ctl"
without thingmuxctl.1 '/^\.SS rotate\\-certificate$/' no-rotate.1
expect_failure "a subcommand's section missing from thingmuxctl.1" "no .SS section for the subcommand 'rotate-certificate'" \
  options "$tmp/no-rotate.1" "$ctl"
without thingmuxctl.1 '/^\.BI \\-\\-connect\\-timeout " SECONDS"$/' no-global.1
expect_failure "a global option missing from thingmuxctl.1" "does not name option --connect-timeout" \
  options "$tmp/no-global.1" "$ctl"
without thingmuxd.8 '/\\-\\-bus/' no-bus.8
expect_failure "an option missing from thingmuxd.8" "does not name option --bus" options "$tmp/no-bus.8" "$daemon"
without thingmux.yaml.5 '/overlap_copies/' no-key.5
expect_failure "a configuration key missing from thingmux.yaml.5" "does not describe the key 'overlap_copies'" \
  config-keys "$tmp/no-key.5" "$src/docs/config.md"
sed 's/^\.SH SEE ALSO$/.SH SEE ALSO\n.BR thingmuxd (8\\fX)/' "$man/thingmuxd.8" >"$tmp/warning.8"
expect_failure "a page groff warns about" "warning" render "$tmp/warning.8"
sed 's|/usr/share/doc/thingmuxd/docs/config.md|docs/config.md|' "$man/thingmuxd.8" >"$tmp/tree-path.8"
expect_failure "a page naming a source tree path" "names a source tree path" text 0.0.0 "$tmp/tree-path.8"

echo "$cases cases, $failures failed"
[ "$failures" -eq 0 ]
