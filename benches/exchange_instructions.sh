#!/bin/sh
# Instructions per transaction of exchange programs, counted by callgrind: a figure the
# load of the machine does not change, for when no quiet machine can be had for the
# timed run (benches/report.sh). Each program runs in a process of its own, checked,
# then RUNS more times; the count is (Ir with RUNS+1 runs − Ir with 1 run) / RUNS, so
# set-up, checking and process start cancel out.
#
#   benches/exchange_instructions.sh                       # the default programs below
#   benches/exchange_instructions.sh "outside/1 MiB/region" ...
#
# Needs valgrind. PROFILE (default maxperf) picks the build; RUNS defaults to 5.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PROFILE=${PROFILE:-maxperf}
RUNS=${RUNS:-5}
command -v valgrind >/dev/null || { echo "error: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

if [ "$#" -eq 0 ]; then
    set -- \
        "handoff/32 B/calldata" "handoff/32 B/region" \
        "handoff/32 KiB/calldata" "handoff/32 KiB/transient" "handoff/32 KiB/region" \
        "handoff/1 MiB/calldata" "handoff/1 MiB/transient" "handoff/1 MiB/region" \
        "sparse/1 MiB/calldata" "sparse/1 MiB/transient" "sparse/1 MiB/region" \
        "fan_out/32 KiB/calldata" "fan_out/32 KiB/transient" "fan_out/32 KiB/region" \
        "outside/1 MiB/calldata_words" "outside/1 MiB/storage" "outside/1 MiB/region" \
        "outside/1 MiB/empty_tx"
fi

exe=$(cargo bench -p shm-benches --profile "$PROFILE" --locked --no-run --message-format=json --bench exchange \
    | sed -n 's/.*"kind":\["bench"\].*"name":"exchange".*"executable":"\([^"]*\)".*/\1/p')
[ -x "$exe" ] || { echo "error: the exchange bench did not build" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Instructions of the whole process with $2 runs of program $1.
instructions() {
    (cd "$ROOT/benches" && EXCHANGE_ONE=$1 EXCHANGE_RUNS=$2 \
        valgrind --tool=callgrind --callgrind-out-file="$work/out" "$exe") >"$work/log" 2>&1 || {
        cat "$work/log" >&2; echo "error: $1 failed" >&2; exit 1; }
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/log"
}

echo "| program | instructions per transaction |"
echo "|---|---:|"
for program in "$@"; do
    one=$(instructions "$program" 1)
    many=$(instructions "$program" $((RUNS + 1)))
    echo "| $program | $(( (many - one) / RUNS )) |"
done
