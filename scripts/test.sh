#!/usr/bin/env bash
# Runs the test suite with the real runtime, models and pipelines. Does the set-up first
# (it skips what is already done), so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export GST_PLUGIN_PATH="$PWD/target/release"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace -- --test-threads=2 "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
