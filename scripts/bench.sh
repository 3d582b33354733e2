#!/usr/bin/env bash
# The speed benchmark: prints a table, writes bench-out/results.json and
# docs/img/bench.png. Not a test: figures vary with the machine and its load.
# Usage: scripts/bench.sh [--frames N] [--peer-frames N]
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
cargo bench --quiet --bench stylize -- "$@" 2> bench-out.log || { cat bench-out.log >&2; exit 1; }
.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install --quiet matplotlib
.venv/bin/python scripts/plot-bench.py bench-out/results.json docs/img/bench.png
