#!/usr/bin/env bash
# The temporal-stability benchmark: flicker on static pixels, texture, lag where things
# move and fps of the stylize element, per variant (element properties and environment),
# on a fixed-camera clip, a still photo with sensor noise and a slow pan. Prints markdown
# tables, writes bench-out/temporal.json and docs/img/deflicker.png. Not a test: figures
# vary with the machine and its load. Metric definitions: scripts/bench_temporal.py.
# Usage: scripts/bench-temporal.sh [--help] [--frames N] [--variant 'LABEL|PROPS|ENV'] ...
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
[ -x .venv/bin/python ] || { echo "bench-temporal: no .venv; run scripts/setup.sh" >&2; exit 1; }
exec .venv/bin/python scripts/bench_temporal.py "$@"
