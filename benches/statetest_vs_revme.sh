#!/usr/bin/env bash
# `evm statetest` against `revme statetest` (revme 43.0.3) on the same work, side by
# side: the two commands alternate (A B A B …), each run timed by /usr/bin/time (wall,
# user + sys CPU, peak RSS). Prints every run and the medians, and our/revme ratios
# taken pair by pair (so a drift in machine speed cancels out).
#
# The same work: GeneralStateTests minus the files revme 43 skips by name (its
# `skip_test` list: our own skip file's six, plus four slow files that pass). Both run
# with their default thread count (one per core).
#
# Then the whole folder with our default skip file (heavy files first).
#
# Needs: revme 43.0.3 (`cargo install revme --version 43.0.3 --locked`), GNU time.
# Figures are only worth quoting from a quiet machine: after building, the script waits
# until the 1-minute load average is below MAX_LOAD (default 1.2) and gives up after WAIT
# seconds (default 1800) with exit status 3.
#
# Usage: benches/statetest_vs_revme.sh [RUNS]     (default 5 pairs)
set -euo pipefail
runs="${1:-5}"
max_load="${MAX_LOAD:-1.2}"
wait_s="${WAIT:-1800}"
root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
fixtures="$root/../shared/ethereum-tests/GeneralStateTests"
target="${CARGO_TARGET_DIR:-$root/target}"
revme="${REVME:-revme}"
cargo install --list | grep -q '^revme v43.0.3:' || { echo "need revme 43.0.3 (cargo install)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "need GNU time at /usr/bin/time" >&2; exit 1; }

(cd "$root" && cargo build --release -p evm --locked)
evm="$target/release/evm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# revme's skip list as a skip file: ours, and the four slow files revme also skips.
{
    cat "$root/tests/statetest-skip.txt"
    echo "stQuadraticComplexityTest/Call50000_sha256.json  # revme skips it (slow)"
    echo "stTimeConsuming/static_Call50000_sha256.json  # revme skips it (slow)"
    echo "VMTests/vmPerformance/loopMul.json  # revme skips it (slow)"
    echo "stTimeConsuming/CALLBlake2f_MaxRounds.json  # revme skips it (slow)"
} > "$work/revme-skips.txt"

waited=0
until awk -v max="$max_load" '{ exit !($1 < max) }' /proc/loadavg; do
    if [ "$waited" -ge "$wait_s" ]; then
        echo "the machine never got quiet (load $(cut -d' ' -f1 /proc/loadavg) after ${wait_s}s)" >&2
        exit 3
    fi
    sleep 10
    waited=$((waited + 10))
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# time_run NAME CMD... : appends "NAME wall cpu rss_kb exit" to $work/runs
time_run() {
    local name="$1"; shift
    local status=0
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" > "$work/out" 2>&1 || status=$?
    read -r wall user sys rss < "$work/t"
    local cpu; cpu=$(echo "$user + $sys" | bc)
    echo "$name $wall $cpu $rss $status" | tee -a "$work/runs"
    if [ "$status" != 0 ]; then tail -5 "$work/out" >&2; fi
}

for i in $(seq 1 "$runs"); do
    time_run ours "$evm" statetest "$fixtures" --no-progress --skip-file "$work/revme-skips.txt"
    time_run revme "$revme" statetest "$fixtures" --omit-progress
done
for i in $(seq 1 "$runs"); do
    time_run whole "$evm" statetest "$fixtures" --no-progress
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work/runs" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def col(name, i): return [float(r[i]) for r in rows if r[0] == name]
def med(xs): return statistics.median(xs)
print()
print("| run | wall s (median, min–max) | CPU s (median) | peak RSS MB (median, min–max) |")
print("|---|---|---|---|")
for name in ("ours", "revme", "whole"):
    w, c, m = col(name, 1), col(name, 2), [x / 1024 for x in col(name, 3)]
    if w:
        print(f"| {name} | {med(w):.2f} ({min(w):.2f}–{max(w):.2f}) | {med(c):.2f} | {med(m):.0f} ({min(m):.0f}–{max(m):.0f}) |")
rows_o = [r for r in rows if r[0] == "ours"]
rows_r = [r for r in rows if r[0] == "revme"]
pairs = list(zip(rows_o, rows_r))
for label, i in (("wall", 1), ("CPU", 2), ("peak RSS", 3)):
    ratios = [float(a[i]) / float(b[i]) for a, b in pairs]
    print(f"ours/revme {label}: median {med(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} pairs)")
PY
