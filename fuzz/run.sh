#!/usr/bin/env bash
# Runs every fuzz target for a fixed time (default 60 s each), growing the
# corpus in fuzz/corpus/TARGET and keeping crashes in fuzz/artifacts/TARGET
# (both committed; `cargo test` replays them).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
for t in detect folded perf_script pprof json recording unwind_table perf_map; do
    mkdir -p "corpus/$t" "artifacts/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -max_len=65536 || echo "fuzz: $t found a crash (see artifacts/$t)"
done
