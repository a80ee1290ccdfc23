#!/usr/bin/env bash
# Records `revme statetest --json-outcome` for the fixtures listed below, one
# `expected/<name>.jsonl` per fixture: the lines revme prints on stderr that start
# with `{"stateRoot"`. The test `revme_outcomes.rs` runs ours on the same fixtures
# and compares every field and value. Recorded with revme 43.0.3
# (`cargo install revme --version 43.0.3 --locked`); CI only reads the result.
#
# Usage: crates/statetest/tests/data/revme-outcomes/record.sh   (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel)"
general="$root/../shared/ethereum-tests/GeneralStateTests"
revme="${REVME:-revme}"
# revme has no --version: check what cargo installed.
cargo install --list | grep -q '^revme v43.0.3:' || { echo "need revme 43.0.3 from cargo install" >&2; exit 1; }

mkdir -p "$here/expected"
record() { # record NAME PATH
    # revme exits 1 when a case fails (the synthetic fixtures fail on purpose).
    { "$revme" statetest --json-outcome --omit-progress --keep-going "$2" 2>&1 >/dev/null || true; } \
        | grep '^{"stateRoot"' > "$here/expected/$1.jsonl"
    echo "$1: $(wc -l < "$here/expected/$1.jsonl") outcomes"
}
# ethereum/tests fixtures, read in place (`fixtures.txt` maps each name to its path).
while read -r name path; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    record "$name" "$general/$path"
done < "$here/fixtures.txt"
# Our own fixtures that fail on purpose, one failure kind each (revme stops a file at
# its first failing case, so each failure is the last case of its file).
for file in "$here"/fixtures/*.json; do
    record "$(basename "$file" .json)" "$file"
done
