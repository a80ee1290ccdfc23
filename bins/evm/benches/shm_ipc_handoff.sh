#!/usr/bin/env bash
# Reproduces the 4 KiB cross-process handoff figures of docs/performance.md (IPC
# section): a pipe and a Unix socket (the baselines) and mapped regions (transaction;
# message mode with a spinning reader; message mode with a sleeping reader), all in one
# criterion run of bins/evm/benches/shm_ipc.rs.
#
# Figures count only from a quiet machine: the script prints the load average before
# and after; publish them only when both are low (1-minute load <= 1.2 on 2 cores with
# this bench as the only job). Extra arguments go to criterion.
set -euo pipefail
cd "$(dirname "$0")/../../.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
cargo bench -p evm --bench shm_ipc -- handoff_4k --warm-up-time 2 --measurement-time 5 "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
