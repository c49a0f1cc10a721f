#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60) and prints
# executions per second and corpus size per target. Needs the nightly toolchain and cargo-fuzz;
# says so and exits 2 when either is missing (never skips silently). Crashes land in
# fuzz/artifacts/TARGET/ and fail the run: turn each into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "error: fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "error: fuzzing needs cargo-fuzz: cargo +nightly install cargo-fuzz" >&2
    exit 2
fi

status=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    log="$(mktemp)"
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 >"$log" 2>&1; then
        echo "$target: FAILED (see fuzz/artifacts/$target/)"
        tail -20 "$log"
        status=1
    fi
    done_line="$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 || true)"
    execs="$(grep -oE 'exec/s: [0-9]+' <<<"$done_line" | tail -1 | grep -oE '[0-9]+' || echo '?')"
    runs="$(grep -oE '^#[0-9]+' <<<"$done_line" | tr -d '#' || echo '?')"
    corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
    echo "$target: ${runs} runs in ${SECONDS_EACH}s, ${execs} exec/s, corpus ${corpus} inputs"
    rm -f "$log"
done
exit "$status"
