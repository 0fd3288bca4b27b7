#!/usr/bin/env bash
# Runs fuzz targets for a fixed time each (default 60 s), growing the
# corpus in fuzz/corpus/TARGET and keeping crashes in fuzz/artifacts/TARGET
# (both committed; `cargo test` replays them). Exits non-zero when a target
# crashed, ran out of memory (-rss_limit_mb=512: the readers run within
# perfkit's 512 MiB budget) or timed out.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(detect folded perf_script pprof json recording unwind_table perf_map gopclntab jitdump)
fi
# One build for all targets, then the runs (which find it built).
cargo +nightly fuzz build
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=512 \
        -timeout=10 -artifact_prefix="artifacts/$t/" -max_len=65536; then
        echo "fuzz: $t failed (see artifacts/$t)"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}"
    exit 1
fi
