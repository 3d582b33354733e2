#!/usr/bin/env bash
# The main job: a live stylized window. Uses the first camera when there is one, else a
# test pattern. Usage: scripts/live.sh [STYLE]   (default: monet)
# SINK overrides the video sink, e.g. SINK=kmssink on a board without a desktop.
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
style=${1:-monet}
sink=${SINK:-autovideosink}
if [ "$sink" = autovideosink ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "live: no display (DISPLAY and WAYLAND_DISPLAY are unset). Run this in a desktop" >&2
  echo "      session, or pick a sink: SINK=kmssink $0 $style" >&2
  exit 1
fi
if [ -e /dev/video0 ]; then source=v4l2src; else source="videotestsrc is-live=true"; fi
echo "live: $source ! stylize style=$style ! $sink (Ctrl-C to stop)"
exec gst-launch-1.0 -e $source ! stylize style="$style" ! "$sink"
