#!/usr/bin/env bash
# Draws the benchmark charts (PNG, 900x500) from a results table with gnuplot.
#
#   scripts/bench-plot.sh RESULTS.tsv OUTDIR
#   RESULTS.tsv: one figure per line, section<TAB>scenario<TAB>path<TAB>value<TAB>unit; '#' lines
#   are comments. Writes OUTDIR/bench-throughput.png (log y), bench-fanout.png, bench-latency.png (log y):
#   one cluster of bars per scenario, one bar per path (direct, thingmux, mqtt-face, bridge). A missing
#   figure leaves a gap; a section without rows is skipped; other sections (rss, cpu, ...) are
#   ignored. Needs gnuplot (Debian: gnuplot-nox, or scripts/bootstrap.sh --bench).
set -euo pipefail
# shellcheck source=lib/help.sh
. "$(dirname "$0")/lib/help.sh"

usage() { script_help "$0"; }
need_gnuplot() {
    command -v gnuplot >/dev/null && return
    echo "bench-plot: gnuplot is not installed; install it with: sudo apt-get install gnuplot-nox" >&2
    echo "bench-plot: (or run scripts/bootstrap.sh --bench, which also installs valgrind)" >&2
    exit 1
}

args=()
for a in "$@"; do
    case $a in
        -h | --help) usage; exit 0 ;;
        *) args+=("$a") ;;
    esac
done
((${#args[@]} == 2)) || { usage >&2; exit 2; }
results=${args[0]} outdir=${args[1]}
[[ -r $results ]] || { echo "bench-plot: cannot read $results" >&2; exit 2; }
need_gnuplot
mkdir -p "$outdir"
work=$(mktemp -d "${TMPDIR:-/tmp}/thingmux-plot.XXXXXX")
trap 'rm -rf "$work"' EXIT

terminal="png size 900,500"
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && terminal="pngcairo size 900,500 font 'Sans,10'"

# chart SECTION FILE TITLE XLABEL YLABEL LOG KNOWN_SCENARIOS...
chart() {
    local section=$1 file=$2 title=$3 xlabel=$4 ylabel=$5 log=$6
    shift 6
    local data=$work/$section.dat
    # data: x, then direct/thingmux/mqtt-face/bridge ('?' when missing). meta: unit, min, max,
    # xtics, the paths present. Known scenarios keep their order (and their slot when absent);
    # others follow.
    local meta
    meta=$(awk -F'\t' -v section="$section" -v data="$data" -v known="$(printf '%s\t' "$@")" '
        BEGIN { nk = split(known, k, "\t") - 1; for (i = 1; i <= nk; i++) { order[++n] = k[i]; seen[k[i]] = 1 }
                np = split("direct thingmux mqtt-face bridge", names, " ")
                for (j = 1; j <= np; j++) p[names[j]] = j }
        /^#/ || NF < 4 || $1 != section || !($3 in p) || $4 !~ /^[0-9.eE+-]+$/ { next }
        {   if (!($2 in seen)) { order[++n] = $2; seen[$2] = 1 }
            v[$2, p[$3]] = $4 + 0; have[p[$3]] = 1; rows++
            if (unit == "") unit = $5
            if ($4 + 0 > 0 && (min == "" || $4 + 0 < min)) min = $4 + 0
            if (max == "" || $4 + 0 > max) max = $4 + 0 }
        END {
            for (i = 1; i <= n; i++) {
                line = i - 1
                for (j = 1; j <= np; j++) line = line "\t" ((order[i], j) in v ? v[order[i], j] : "?")
                print line > data
                s = order[i]; gsub(/"/, "\\\"", s)
                tics = tics (i > 1 ? ", " : "") "\"" s "\" " i - 1
            }
            present = ""
            for (j = 1; j <= np; j++) present = present ((j in have) ? 1 : 0)
            printf "%s\t%s\t%s\t%s\t%s\t%d\n", unit, (min == "" ? 1 : min), (max > 0 ? max : 1), tics, present, n
            exit (rows == 0 ? 3 : 0) }' "$results") || {
        (($? == 3)) || exit 1
        echo "bench-plot: no '$section' rows in $results; $file not written"
        return 0
    }
    local unit min max tics have n
    IFS=$'\t' read -r unit min max tics have n <<<"$meta"

    # Tick labels are drawn here (k, M) since gnuplot's %c would round 1200 to "1k". Log scale:
    # the axis starts at a 1-2-5 step below the smallest bar and labels every 1-2-5 step.
    local axis="set yrange [0:$max * 1.15]
step = nice(($max * 1.15) / 8)
set ytics ('0' 0)
do for [i = 1:ceil($max * 1.15 / step)] { set ytics add (label(i * step) i * step) }"
    [[ $log == log ]] && axis="set logscale y
set yrange [lo125($min / 1.5) * 0.999:$max * 2.5]
set ytics ('' 1e-30)
do for [e = -3:12] { set ytics add (label(10.0**e) 10.0**e, label(2 * 10.0**e) 2 * 10.0**e, label(5 * 10.0**e) 5 * 10.0**e) }"
    local plots=() names=(direct thingmux mqtt-face bridge) colors=('#8c8c8c' '#1f77b4' '#2ca02c' '#ff7f0e')
    for j in 0 1 2 3; do
        [[ ${have:j:1} == 1 ]] || continue
        local x="(\$1 + ($j - 1.5) * 0.21)" col=$((j + 2))
        plots+=("'$data' using $x:$col:(0.2) with boxes lc rgb '${colors[j]}' title '${names[j]}'")
        plots+=("'$data' using $x:$col:(fmt(\$$col)) with labels offset 0,0.7 font ',8' notitle")
    done
    local IFS=,
    gnuplot <<EOF
set terminal $terminal
set encoding utf8
set output '$outdir/$file'
set title "$title"
set xlabel "$xlabel"
set ylabel "$ylabel ($unit)"
set datafile separator "\t"
set datafile missing "?"
set style fill solid 0.85 border -1
set key outside right top vertical
set grid ytics
set xtics ($tics) nomirror
set xrange [-0.6:$n - 0.4]
mant(v) = v / 10.0**floor(log10(v))
lo125(v) = (mant(v) >= 5 ? 5 : mant(v) >= 2 ? 2 : 1) * 10.0**floor(log10(v))
nice(v) = (mant(v) <= 1 ? 1 : mant(v) <= 2 ? 2 : mant(v) <= 5 ? 5 : 10) * 10.0**floor(log10(v))
label(v) = v >= 1e6 ? sprintf("%gM", v / 1e6) : v >= 1e3 ? sprintf("%gk", v / 1e3) : sprintf("%g", v)
fmt(v) = v >= 1e6 ? sprintf("%.3gM", v / 1e6) : v >= 1e3 ? sprintf("%.3gk", v / 1e3) : sprintf("%.3g", v)
$axis
plot ${plots[*]}
EOF
    echo "bench-plot: wrote $outdir/$file"
}

chart throughput bench-throughput.png "Publish throughput (higher is better)" "scenario" "throughput" log \
    "QoS 0, 1 app" "QoS 0, 10 apps" "QoS 1, 1 app" "QoS 1, 10 apps"
chart fanout bench-fanout.png "Inbound fan-out (higher is better)" "local subscribers" "deliveries" lin \
    "1 subscriber" "10 subscribers" "100 subscribers"
chart latency bench-latency.png "Round-trip latency (lower is better)" "percentile" "latency" log \
    p50 p99 p99.9
