#!/usr/bin/env bash
# The long fuzz run (docs/reliability.md): builds the libFuzzer binary `any` of fuzz/
# (every target in one instrumented binary, chosen by SHM_FUZZ_TARGET) with
# `cargo fuzz` on the pinned stable toolchain and runs each target for SECONDS seconds,
# starting from the checked-in corpus, keeping what it finds in fuzz/run-corpus/ and
# crashes in fuzz/artifacts/. Prints one line per target: executions, coverage
# (libFuzzer's `cov` edges and `ft` features), corpus size and crashes.
#
#   scripts/fuzz-long.sh [SECONDS] [TARGET...]      # default: 600 s, every target
#   SANITIZER=address scripts/fuzz-long.sh 600 hex  # AddressSanitizer (RUSTC_BOOTSTRAP)
#   JOBS=2 scripts/fuzz-long.sh 3600                # two fuzzing processes per target
#
# Needs `cargo install cargo-fuzz` (0.13) and a C++ compiler (libfuzzer-sys builds
# libFuzzer). The default sanitizer is `none`: every flag cargo-fuzz passes then is
# a stable `-C` flag. AddressSanitizer needs `-Zsanitizer=address`, which the stable
# toolchain accepts only with RUSTC_BOOTSTRAP=1 (set here when SANITIZER=address).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
sanitizer=${SANITIZER:-none}
jobs=${JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(hex prestate statetest asm header snapshot region_file host_model bytecode)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi
triple=x86_64-unknown-linux-gnu

echo "== building the fuzz binary (sanitizer: $sanitizer)"
cargo fuzz build --features libfuzzer -s "$sanitizer" any
bin=$(cd "${CARGO_TARGET_DIR:-target}/$triple/release" && pwd)/any

mkdir -p fuzz/logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/run-corpus/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
    log="fuzz/logs/$t.log"
    started=$(mktemp)
    parallel=()
    if [ "$jobs" -gt 1 ]; then
        # libFuzzer writes each worker's output to fuzz-N.log in the working directory.
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    # -rss_limit_mb / -malloc_limit_mb: an input that asks for gigabytes is a finding.
    (cd fuzz/logs && SHM_FUZZ_TARGET=$t "$bin" "../run-corpus/$t" "../corpus/$t" \
        -max_total_time="$seconds" "${parallel[@]}" \
        -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=30 \
        -artifact_prefix="../artifacts/$t/" -print_final_stats=1) >"$log" 2>&1 || status=1
    if [ "$jobs" -gt 1 ]; then
        cat fuzz/logs/fuzz-*.log >>"$log" && rm -f fuzz/logs/fuzz-*.log
    fi
    done_line=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true)
    crashes=$(find "fuzz/artifacts/$t" -type f -newer "$started" | wc -l)
    rm -f "$started"
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
    printf '%-12s %s | executions %s | crashes %s\n' "$t" "${done_line:-(no stats: see $log)}" "$execs" "$crashes"
done
exit $status
