#!/usr/bin/env bash
# Runs the test suite with the real runtime, models and pipelines. Does the set-up first
# (it skips what is already done), so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export GST_PLUGIN_PATH="$PWD/target/release"
cargo test --release --workspace -- --test-threads=2 "$@"
