#!/bin/sh
# Whole-process time and peak memory of `evm blocktest` (shared memory off, on, and with
# alloy-evm's own EthEvmFactory) against `revme blockchaintest` 43.0.3, on the same folder.
#
#   benches/blocktest_vs_revme.sh            # from the repository root
#
# Needs revme 43.0.3 (`cargo install revme --version 43.0.3 --locked`) and GNU time
# (/usr/bin/time). Figures are only worth publishing on a quiet machine: the script waits
# until the 1-minute load average is below MAX_LOAD (default 1.2) and gives up after WAIT
# seconds (default 1800) with exit status 3. Runs alternate (ours, revme, ours, revme, …)
# so that a change of load hits both; the medians of RUNS runs (default 5) are printed as
# the rows of docs/performance.md's "Block tests" table.
set -eu

FIXTURES=${FIXTURES:-../shared/ethereum-tests/BlockchainTests}
RUNS=${RUNS:-5}
MAX_LOAD=${MAX_LOAD:-1.2}
WAIT=${WAIT:-1800}
THREADS=${THREADS:-2}
TIME=/usr/bin/time

[ -d "$FIXTURES" ] || { echo "error: no fixtures at $FIXTURES" >&2; exit 2; }
[ -x "$TIME" ] || { echo "error: $TIME (GNU time) is needed" >&2; exit 2; }
command -v revme >/dev/null || {
    echo "error: revme not found; cargo install revme --version 43.0.3 --locked" >&2; exit 2; }

# EVM=path/to/evm measures a binary built elsewhere (default: a release build of this tree).
if [ -z "${EVM:-}" ]; then
    cargo build --release --locked -p evm
    EVM=${CARGO_TARGET_DIR:-target}/release/evm
fi

waited=0
while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then break; fi
    if [ "$waited" -ge "$WAIT" ]; then
        echo "error: the machine stayed busy (1-minute load $load >= $MAX_LOAD for ${WAIT}s);" \
             "figures measured now would not be publishable" >&2
        exit 3
    fi
    sleep 10
    waited=$((waited + 10))
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One run: appends "wall user sys maxrss_kb" to $out/$1.
measure() {
    name=$1; shift
    "$TIME" -f '%e %U %S %M' -o "$out/one" "$@" >/dev/null 2>&1 || true
    tail -n 1 "$out/one" >>"$out/$name"
}

i=0
while [ "$i" -lt "$RUNS" ]; do
    measure evm_off "$EVM" blocktest "$FIXTURES" --no-progress -j "$THREADS"
    measure revme revme blockchaintest "$FIXTURES" --keep-going --omit-progress
    measure evm_on "$EVM" blocktest "$FIXTURES" --no-progress -j "$THREADS" --shm
    measure evm_eth "$EVM" blocktest "$FIXTURES" --no-progress -j "$THREADS" --eth-evm-factory
    i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
row() {
    file="$out/$1"
    wall=$(cut -d' ' -f1 "$file" | median)
    cpu=$(awk '{ print $2 + $3 }' "$file" | median)
    rss=$(cut -d' ' -f4 "$file" | median)
    printf '| %s | %s s | %s s | %s MB |\n' "$2" "$wall" "$cpu" "$((rss / 1024))"
}
echo "| run (median of $RUNS) | wall | CPU (user + sys) | peak RSS |"
echo "|---|---|---|---|"
row revme '`revme blockchaintest` 43.0.3'
row evm_off '`evm blocktest` (ShmEvmFactory, shared memory off)'
row evm_on '`evm blocktest --shm` (production preset)'
row evm_eth '`evm blocktest --eth-evm-factory` (alloy-evm EthEvmFactory)'
