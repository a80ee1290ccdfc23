#!/usr/bin/env bash
# The long soak: the heap-backed and the mapped (two-process) soaks of
# tests/tests/soak, one after the other, SOAK_SECS seconds each (default one
# hour), with their memory curves and throughput written to SOAK_OUT
# (default target/soak) and plotted into docs/soak.png.
#
#   benches/soak.sh                   # 2 x 1 hour
#   SOAK_SECS=600 benches/soak.sh     # 2 x 10 minutes
#
# The load around the run is printed: throughput is only comparable between
# runs on a quiet machine (the correctness checks hold at any load).
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS="${SOAK_SECS:-3600}"
# Absolute: the test runs in tests/, the plot from the root.
export SOAK_OUT="$(realpath -m "${SOAK_OUT:-target/soak}")"
echo "== load before: $(uptime)"
cargo test --profile ci --locked -p shm-tests --test soak -- \
    --nocapture --test-threads=1 --exact soak_heap_backed soak_mapped_namespace_with_a_second_process
echo "== load after: $(uptime)"
python3 benches/soak_plot.py "$SOAK_OUT" docs/soak.png
