#!/usr/bin/env bash
# What `accelerator=auto` picks on this machine and what each choice costs: the wall time
# of `gst-launch-1.0` (process start included) for 1 frame (start-up) and for FRAMES
# frames of 640x480, median of RUNS runs, with the chosen accelerator and its reason.
# Rows: no Vulkan driver (VK_DRIVER_FILES pointed at nothing), the machine as it is
# (lavapipe only, where scripts/setup-test-gpu.sh ran), forced gpu, and lavapipe raced as
# if it were a GPU (STYLIZE_AUTO_RACE_SOFTWARE_GPU=1): first start, then the kept
# decision. OLD_PLUGIN_DIR=DIR adds rows for an older build's auto, for comparison.
# Usage: scripts/bench-auto.sh [FRAMES] (default 30; forced gpu runs 3, lavapipe is slow)
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
frames=${1:-30}
runs=${RUNS:-3}
# The first folder of GST_PLUGIN_PATH that holds the plugin, else this build's.
plugin=$PWD/target/release
IFS=: read -ra dirs <<< "${GST_PLUGIN_PATH:-}"
for d in "${dirs[@]}"; do
  if [ -f "$d/libgststylize.so" ]; then plugin=$d; break; fi
done
[ -f "$plugin/libgststylize.so" ] || { echo "bench-auto: no plugin in $plugin: run scripts/setup.sh" >&2; exit 1; }
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
no_vulkan=(VK_DRIVER_FILES=/nonexistent/icd.json VK_ICD_FILENAMES=/nonexistent/icd.json)

# One gst-launch run: prints "milliseconds active reason".
once() {
  local dir=$1 n=$2; shift 2
  local props=() envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  props=("$@")
  local start log
  log=$(mktemp)
  start=${EPOCHREALTIME/./}
  env "${envs[@]}" GST_PLUGIN_PATH="$dir" GST_REGISTRY="$cache/registry${dir//\//_}.bin" gst-launch-1.0 -v videotestsrc num-buffers="$n" \
    ! video/x-raw,width=640,height=480 ! stylize name=st "${props[@]}" \
    ! fakesink sync=false > "$log" 2>&1 || { echo "failed"; tail -3 "$log" >&2; rm -f "$log"; return; }
  local ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
  local active reason
  active=$(grep -ao 'active-accelerator = .*' "$log" | head -1 | cut -d' ' -f3- || true)
  reason=$(grep -ao 'accelerator-reason = .*' "$log" | head -1 | cut -d' ' -f3- || true)
  rm -f "$log"
  echo "$ms ${active:--} ${reason:--}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# row LABEL FRAMES PLUGIN_DIR ENV... -- PROPS...
row() {
  local label=$1 n=$2 dir=$3; shift 3
  local starts=() totals=() last=""
  for ((i = 0; i < runs; i++)); do
    last=$(once "$dir" 1 "$@")
    [ "$last" != failed ] || { printf '| %s | failed | | | |\n' "$label"; return; }
    starts+=("${last%% *}")
    totals+=("$(once "$dir" "$n" "$@" | cut -d' ' -f1)")
  done
  local active=${last#* }; local reason=${active#* }; active=${active%% *}
  printf '| %s | %s | %s ms | %s ms for %s frames | %s |\n' "$label" "$active" \
    "$(printf '%s\n' "${starts[@]}" | median)" "$(printf '%s\n' "${totals[@]}" | median)" "$n" "$reason"
}

# Each plugin folder has its own registry, filled here, so no row pays for a rescan.
once "$plugin" 1 -- accelerator=cpu > /dev/null
[ -z "${OLD_PLUGIN_DIR:-}" ] || once "$OLD_PLUGIN_DIR" 1 -- accelerator=cpu > /dev/null
echo "accelerator choice at 640x480, $(nproc) cores, median of $runs runs (wall time of gst-launch-1.0)"
echo "| case | picks | start-up (1 frame) | all frames | reason |"
echo "|---|---|---|---|---|"
row "no Vulkan driver, auto" "$frames" "$plugin" "${no_vulkan[@]}" -- accelerator=auto
row "no Vulkan driver, cpu" "$frames" "$plugin" "${no_vulkan[@]}" -- accelerator=cpu
row "this machine as it is, auto" "$frames" "$plugin" -- accelerator=auto
row "this machine as it is, cpu" "$frames" "$plugin" -- accelerator=cpu
row "this machine as it is, forced gpu" 3 "$plugin" -- accelerator=gpu "cache-dir=$cache/gpu"
race=(STYLIZE_AUTO_RACE_SOFTWARE_GPU=1)
first=$(once "$plugin" 3 "${race[@]}" -- "cache-dir=$cache/race")
echo "| software GPU raced, first start | $(echo "$first" | cut -d' ' -f2) | | ${first%% *} ms for 3 frames | $(echo "$first" | cut -d' ' -f3-) |"
row "software GPU raced, kept decision" "$frames" "$plugin" "${race[@]}" -- "cache-dir=$cache/race"
if [ -n "${OLD_PLUGIN_DIR:-}" ]; then
  row "older build, no Vulkan driver, auto" "$frames" "$OLD_PLUGIN_DIR" "${no_vulkan[@]}" -- accelerator=auto
  row "older build, this machine as it is, auto" 3 "$OLD_PLUGIN_DIR" -- accelerator=auto
fi
