#!/usr/bin/env bash
# The GPU check, for the device machine: run it there from the repository root with
# target/device-kit carried (scripts/device-kit.sh builds it here), e.g.
#
#   device tool: command "scripts/device-gpu-check.sh", carry ["target/device-kit"],
#                timeout_s 480
#
# It writes under $OUT (device-out/ without it): machine.txt, bench.txt and results.json
# (the benchmark's GPU rows: raw engine 384² to 1080p, the element at 640x480, 720p and
# 1080p, downscaled and native, and the start-up with a cold and a warm program cache),
# launch.txt (the gst-launch line on the GPU, twice, sharing one cache folder), small.txt
# (the GPU below 384 with the static-shape graph) and auto.txt (auto's race and its kept
# decision).
set -uo pipefail
export LC_ALL=C
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
kit=$(mktemp -d)
tar -C "$kit" -xJf target/device-kit/kit.tar.xz || { echo "no kit: run scripts/device-kit.sh here first" >&2; exit 1; }

export LD_LIBRARY_PATH=$kit/lib
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export STYLIZE_LITERT_LIB=$kit/litert STYLIZE_MODEL_DIR=$kit/models STYLIZE_STORE=$kit/styles.json
export STYLIZE_CACHE_DIR=$out/program-cache
export GST_PLUGIN_SYSTEM_PATH=$kit/gst GST_PLUGIN_PATH='' GST_REGISTRY=$kit/registry.bin
export GST_REGISTRY_FORK=no
# gst-launch finds the plugin; the benchmark registers the element itself.
launch() {
  GST_PLUGIN_PATH=$kit/plugin GST_REGISTRY=$kit/launch-registry.bin \
    timeout 60 "$kit/bin/gst-launch-1.0" "$@"
}

ms_since() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }

{
  echo "== machine"
  nvidia-smi -L 2>&1 || echo "no nvidia-smi"
  ldd --version 2>&1 | head -1
  ls -l "$VK_DRIVER_FILES" 2>&1
  echo "== libraries the kit lacks here"
  for f in "$kit"/bin/* "$kit"/{gst,plugin,litert}/*.so; do ldd "$f" | grep "not found"; done
  echo "(end)"
} 2>&1 | tee "$out/machine.txt"

echo "== benchmark (GPU rows)"
timeout 300 "$kit/bin/bench" --gpu-only --frames 300 --out "$out" \
  2> "$out/bench-stderr.txt" | tee "$out/bench.txt"
echo "benchmark exit: ${PIPESTATUS[0]}" | tee -a "$out/bench.txt"

echo "== gst-launch on the GPU, 300 frames of 1280x720" | tee "$out/launch.txt"
for run in cold-cache warm-cache; do
  start=${EPOCHREALTIME/./}
  launch videotestsrc num-buffers=300 \
    ! video/x-raw,width=1280,height=720 ! stylize accelerator=gpu \
    ! fakesink sync=false > "$out/launch-$run.log" 2>&1
  echo "$run: exit $?, $(ms_since "$start") ms including start-up" | tee -a "$out/launch.txt"
done
ls -l "$STYLIZE_CACHE_DIR" 2>&1 | tee -a "$out/launch.txt"

# Below 384 on a real GPU: the static-shape graph at the CPU's geometry (384x288,
# 384x216, 288x384), each in its own process since the old crash aborted the process.
echo "== GPU below 384 (STYLIZE_GPU_MIN_SIDE=0), static-shape graph" | tee "$out/small.txt"
for size in 640x480 1280x720 480x640; do
  w=${size%x*} h=${size#*x}
  STYLIZE_GPU_MIN_SIDE=0 launch -v videotestsrc num-buffers=30 \
    ! "video/x-raw,width=$w,height=$h" ! stylize name=st accelerator=gpu \
    ! fakesink sync=false > "$out/small-$size.log" 2>&1
  echo "$size: exit $?" | tee -a "$out/small.txt"
done

# auto on a real GPU: the race at the first caps, then the kept decision.
echo "== auto: race, then the kept decision" | tee "$out/auto.txt"
for run in race kept; do
  launch -v videotestsrc num-buffers=30 ! video/x-raw,width=640,height=480 \
    ! stylize name=st ! fakesink sync=false > "$out/auto-$run.log" 2>&1
  echo "$run: exit $?; $(grep -ao 'accelerator-reason = .*' "$out/auto-$run.log" | head -1)" \
    | tee -a "$out/auto.txt"
done
rm -rf "$kit"
