# Sourced by the scripts: `script_help FILE` prints the comment block at the top of FILE (after
# the #! line), which is each script's --help.
script_help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }
