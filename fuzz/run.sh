#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 600) each, one after another, then
# minimises each corpus. Exits non-zero as soon as a target crashes (the input is left in
# fuzz/artifacts/<target>/). Needs a nightly toolchain and `cargo install cargo-fuzz`.
#
#   fuzz/run.sh                     # every target, 10 minutes each
#   FUZZ_SECONDS=60 fuzz/run.sh range manifest
#   FUZZ_CPU=1 fuzz/run.sh          # pin to CPU 1 with taskset
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
pin=()
if [ -n "${FUZZ_CPU:-}" ]; then
    if command -v taskset >/dev/null; then
        pin=(taskset -c "$FUZZ_CPU")
    else
        echo "FUZZ_CPU is set but taskset is not installed; not pinning" >&2
    fi
fi

cargo +nightly fuzz build
for t in "${targets[@]}"; do
    echo "== $t: ${seconds}s"
    mkdir -p "fuzz/corpus/$t"
    extra=()
    # Uploads need room for a text part over its 4 KiB limit.
    [ "$t" = multipart ] && extra=(-max_len=12288)
    if ! "${pin[@]}" cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}"; then
        echo "== $t CRASHED: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
for t in "${targets[@]}"; do
    echo "== minimising the $t corpus"
    # Edges only (no hit-count buckets): every covered edge kept, a far smaller corpus.
    "${pin[@]}" cargo +nightly fuzz cmin "$t" -- -use_counters=0
done
du -sh --apparent-size fuzz/corpus
