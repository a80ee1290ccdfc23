#!/bin/sh
# Regenerates the tables of docs/performance.md in one command:
#
#   benches/report.sh                  # from anywhere in the checkout
#
# It builds the `shm-benches` benches in the `maxperf` profile, then runs, one after
# the other, each on a quiet machine:
#
#   per_op       the five shared-memory opcodes next to MLOAD, MSTORE, MCOPY, TLOAD,
#                TSTORE, SLOAD (ns/op and gas/op, empty loop subtracted)
#   exchange     calldata / transient storage / storage / a region, four scenarios
#   overhead     stock revm vs shared memory on but unused (snailtracer, analysis,
#                burntpix, estimator rows)
#   adversarial  the hostile programs next to the slowest mainnet loops (ns/gas)
#
# Criterion's HTML report goes to $CRITERION_HOME/report/index.html (default
# target/criterion). The script writes a Markdown summary — date, machine, commit,
# load average before and after each bench, the exact command, and every table — to
# $OUT (default $CRITERION_HOME/report.md), and replaces the blocks between
# `<!-- report:NAME -->` and `<!-- /report:NAME -->` in $DOCS (default
# docs/performance.md; DOCS= leaves it alone).
#
# Figures are only worth publishing from a quiet machine: before each bench the script
# waits until the 1-minute load average is below MAX_LOAD (default 1.2), and gives up
# after WAIT seconds (default 3600; WAIT=0 refuses at once) with exit status 3.
#
# Settings (environment): MAX_LOAD, WAIT, BENCHES (default "per_op exchange overhead
# adversarial"), CRITERION_ARGS (default "--warm-up-time 2 --measurement-time 5"),
# SHM_BENCH_DATA (default ../shared/bench-data beside the checkout), CARGO_TARGET_DIR,
# CRITERION_HOME, OUT, DOCS.
#
# Exit status: 0 done; 2 a missing prerequisite (bench data, a docs marker); 3 the
# machine stayed busy; other: a build or a bench failed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MAX_LOAD=${MAX_LOAD:-1.2}
WAIT=${WAIT:-3600}
BENCHES=${BENCHES:-per_op exchange overhead adversarial}
CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 2 --measurement-time 5}
SHM_BENCH_DATA=${SHM_BENCH_DATA:-$ROOT/../shared/bench-data}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CRITERION_HOME=${CRITERION_HOME:-$TARGET/criterion}
OUT=${OUT:-$CRITERION_HOME/report.md}
DOCS=${DOCS-docs/performance.md}
export SHM_BENCH_DATA CRITERION_HOME

command_line="MAX_LOAD=$MAX_LOAD WAIT=$WAIT BENCHES=\"$BENCHES\" CRITERION_ARGS=\"$CRITERION_ARGS\" benches/report.sh"

for file in snailtracer.hex analysis.hex gas_cost_estimator_sample.csv \
    burntpix/bytecode_one.hex burntpix/bytecode_two.hex \
    burntpix/bytecode_three.hex burntpix/bytecode_four.hex; do
    [ -r "$SHM_BENCH_DATA/$file" ] || {
        echo "error: bench data $SHM_BENCH_DATA/$file is missing (the bench programs are read in place from ../shared/bench-data beside the checkout, or from \$SHM_BENCH_DATA)" >&2
        exit 2
    }
done
for bench in $BENCHES; do
    case $bench in
        per_op | exchange | overhead | adversarial) ;;
        *) echo "error: unknown bench '$bench' (per_op, exchange, overhead, adversarial)" >&2; exit 2 ;;
    esac
    if [ -n "$DOCS" ] && ! grep -q "^<!-- report:$bench -->\$" "$DOCS"; then
        echo "error: $DOCS has no '<!-- report:$bench -->' block to replace (DOCS= to leave it alone)" >&2
        exit 2
    fi
done

load1() { cut -d' ' -f1 /proc/loadavg; }
load3() { cut -d' ' -f1-3 /proc/loadavg; }

# Waits for a quiet machine; exit 3 after WAIT seconds.
wait_quiet() {
    waited=0
    while :; do
        load=$(load1)
        if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then
            return 0
        fi
        if [ "$waited" -ge "$WAIT" ]; then
            echo "error: the machine stayed busy (1-minute load $load >= MAX_LOAD $MAX_LOAD after ${WAIT}s of waiting); figures measured now would not be publishable, so none were" >&2
            exit 3
        fi
        [ "$waited" -eq 0 ] && echo "waiting for a quiet machine: 1-minute load $load, want < $MAX_LOAD (up to ${WAIT}s)" >&2
        sleep 10
        waited=$((waited + 10))
    done
}

# Build once, before waiting: building is what makes the machine busy. The binaries
# are then run directly, so nothing can trigger a rebuild between benches.
echo "building the benches (profile maxperf)" >&2
binaries=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$binaries" "$work"' EXIT
cargo bench -p shm-benches --profile maxperf --locked --no-run --message-format=json \
    | sed -n 's/.*"kind":\["bench"\].*"name":"\([^"]*\)".*"executable":"\([^"]*\)".*/\1 \2/p' \
    >"$binaries"

mkdir -p "$CRITERION_HOME"
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . 2>/dev/null || commit="$commit (with uncommitted changes)"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cores=$(nproc)
memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
kernel=$(uname -sr)
rustc=$(rustc --version)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

loads="$work/loads"
: >"$loads"
for bench in $BENCHES; do
    exe=$(awk -v b="$bench" '$1 == b { print $2 }' "$binaries")
    [ -x "$exe" ] || { echo "error: no built binary for bench $bench" >&2; exit 1; }
    wait_quiet
    before=$(load3)
    echo "running $bench (load $before)" >&2
    rm -f "$CRITERION_HOME/shm-report.md"
    # shellcheck disable=SC2086 # CRITERION_ARGS is a list of arguments
    (cd "$ROOT/benches" && "$exe" --bench $CRITERION_ARGS) >"$work/$bench.log" 2>&1 || {
        tail -n 20 "$work/$bench.log" >&2
        echo "error: bench $bench failed (log above)" >&2
        exit 1
    }
    after=$(load3)
    echo "| $bench | $before | $after |" >>"$loads"
    [ -s "$CRITERION_HOME/shm-report.md" ] || { echo "error: bench $bench printed no table" >&2; exit 1; }
    mv "$CRITERION_HOME/shm-report.md" "$work/$bench.md"
done
finished=$(date -u '+%Y-%m-%d %H:%M UTC')

{
    echo "Measured by \`benches/report.sh\` ($started – $finished)."
    echo
    echo "- **Machine:** $cpu, $cores cores, $memory, $kernel; $rustc."
    echo "- **Commit:** \`$commit\`; profile \`maxperf\` (fat LTO, one codegen unit)."
    echo "- **Command:** \`$command_line\`"
    echo "- **Criterion:** \`$CRITERION_ARGS\`; HTML report in \`target/criterion/report/index.html\`."
    echo "- **Load average** (1, 5, 15 min) around each bench; each waited for a 1-minute load below $MAX_LOAD:"
    echo
    echo "| bench | before | after |"
    echo "|---|---|---|"
    cat "$loads"
} >"$work/setup.md"

{
    echo "# Benchmark report"
    echo
    cat "$work/setup.md"
    for bench in $BENCHES; do
        echo
        echo "## $bench"
        cat "$work/$bench.md"
    done
} >"$OUT"
echo "summary: $OUT" >&2

# Replaces the block of $DOCS between <!-- report:NAME --> and <!-- /report:NAME -->.
replace_block() {
    name=$1 file=$2
    grep -q "^<!-- report:$name -->\$" "$DOCS" || return 0
    awk -v first="<!-- report:$name -->" -v last="<!-- /report:$name -->" -v file="$file" '
        $0 == first { print; while ((getline line < file) > 0) print line; skip = 1; next }
        $0 == last { skip = 0 }
        !skip { print }
    ' "$DOCS" >"$work/docs" && cat "$work/docs" >"$DOCS"
}
# A run of every bench replaces the shared set-up block; a run of some of them leaves it
# (it describes the other tables) and puts its own set-up at the head of each block.
if [ -n "$DOCS" ]; then
    if [ "$BENCHES" = "per_op exchange overhead adversarial" ]; then
        replace_block setup "$work/setup.md"
        for bench in $BENCHES; do
            replace_block "$bench" "$work/$bench.md"
        done
    else
        for bench in $BENCHES; do
            { cat "$work/setup.md"; echo; cat "$work/$bench.md"; } >"$work/$bench.block.md"
            replace_block "$bench" "$work/$bench.block.md"
        done
    fi
    echo "tables written into $DOCS" >&2
fi
