#!/bin/sh
# Instructions per warm operation, counted by callgrind: the figures of the warm-path
# targets (issue 9) that the load of the machine does not change. Each loop runs
# 1,000 times in `evm run --shm production`, after a 64 KiB SHARED_ALLOC and a 32 KiB
# SHARED_WRITE that saves the pages the loop writes; the same program with an empty
# loop body is subtracted, so the count is one operation with its operand pushes and
# the POP of its result, and the interpreter's loop for those opcodes.
#
#   benches/per_op_instructions.sh
#
# Needs valgrind. PROFILE (default release, as `docs/performance.md` reports) picks the
# build of `evm`. Counts move by about 20 instructions between builds of unrelated
# changes (inlining and layout); the mainnet peers do not.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PROFILE=${PROFILE:-release}
command -v valgrind >/dev/null || { echo "error: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

cargo build -p evm --profile "$PROFILE" --locked >&2
target=${CARGO_TARGET_DIR:-$ROOT/target}
evm="$target/$PROFILE/evm"
[ -x "$evm" ] || { echo "error: $evm was not built" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions of the whole `evm run` of a loop whose body is $1.
instructions() {
    {
        echo "PUSH 0 PUSH 65536 SHARED_ALLOC"
        echo "PUSH0 PUSH 0x8000 PUSH0 DUP4 SHARED_WRITE POP"
        echo "PUSH 1000"
        echo "loop:"
        echo "JUMPDEST"
        echo "$1"
        echo "PUSH 1 SWAP1 SUB DUP1 PUSH @loop JUMPI"
        echo "STOP"
    } >"$work/loop.easm"
    valgrind --tool=callgrind --callgrind-out-file="$work/out" \
        "$evm" run --shm production --asm "$work/loop.easm" >"$work/stdout" 2>"$work/log" || {
        cat "$work/log" >&2
        echo "error: evm run failed for the loop body '$1'" >&2
        exit 1
    }
    count=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/log")
    [ -n "$count" ] || { echo "error: callgrind reported no count for '$1'" >&2; exit 1; }
    echo "$count"
}

empty=$(instructions "")
# Instructions of one operation: (the loop with body $1 − the empty loop) / 1,000.
per_op() {
    echo $((($(instructions "$1") - empty) / 1000))
}

read_32=$(per_op "PUSH0 PUSH 32 PUSH0 DUP5 SHARED_READ POP")
write_32=$(per_op "PUSH0 PUSH 32 PUSH0 DUP5 SHARED_WRITE POP")
map=$(per_op "PUSH 0 DUP3 SHARED_MAP POP")
mcopy_32=$(per_op "PUSH 32 PUSH 0 PUSH 0x100 MCOPY")
tstore=$(per_op "PUSH 7 PUSH 1 TSTORE")
tload=$(per_op "PUSH 1 TLOAD POP")

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'
}

echo "Instructions per op (callgrind, \`$PROFILE\` \`evm run\`, commit $(git rev-parse --short HEAD)):"
echo
echo "| loop of | instructions per op | mainnet peer | ratio | target |"
echo "|---|---:|---|---:|---|"
echo "| SHARED_READ 32 B warm | $read_32 | MCOPY 32 B: $mcopy_32 | $(ratio "$read_32" "$mcopy_32") | ≤ 2× |"
echo "| SHARED_WRITE 32 B warm | $write_32 | TSTORE: $tstore | $(ratio "$write_32" "$tstore") | ≤ 1× |"
echo "| SHARED_MAP warm | $map | TLOAD: $tload | $(ratio "$map" "$tload") | ≤ 2× |"
