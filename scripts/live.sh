#!/usr/bin/env bash
# The main job: a live stylized window. Uses the first camera when there is one, else a
# test pattern. Usage: scripts/live.sh [STYLE]   (default: monet)
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
style=${1:-monet}
if [ -e /dev/video0 ]; then source=v4l2src; else source=videotestsrc; fi
echo "live: $source ! stylize style=$style ! autovideosink (Ctrl-C to stop)"
exec gst-launch-1.0 -e "$source" ! stylize style="$style" ! autovideosink
