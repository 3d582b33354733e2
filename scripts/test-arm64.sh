#!/usr/bin/env bash
# The aarch64 build's tests, run under qemu-user against the Debian arm64 sysroot:
# the engine (LiteRT ABI, model patching, unit tests), element pipelines, the fidelity
# check at the inference size, the CPU fallback on a core the GPU accelerator cannot run
# on, and a daemon smoke test over D-Bus; then the emulated speed (not a real-board
# figure) and the arm64 package.
# Usage: scripts/test-arm64.sh   (runs scripts/cross-build.sh --tests first)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1mtest-arm64:\033[0m %s\n' "$*"; }

scripts/cross-build.sh --tests
# shellcheck source=scripts/cross-env.sh
source scripts/cross-env.sh

# qemu 7.2 shows the host's /proc/cpuinfo to the guest, and the CPU detection inside
# LiteRT (XNNPACK's cpuinfo) crashes on x86 entries, or picks kernels by the core it
# reads there. Under -L, qemu reads this file instead, written for the emulated core.
fake_cpuinfo() {
  local features part variant
  case "$1" in
    neoverse-n1) part=0xd0c variant=0x3
      features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs" ;;
    cortex-a72) part=0xd08 variant=0x0 features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
    *) echo "test-arm64: no /proc/cpuinfo template for $1" >&2; return 1 ;;
  esac
  mkdir -p "$ARM64_SYSROOT/proc"
  for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: 1\n\n' \
      "$i" "$features" "$variant" "$part"
  done > "$ARM64_SYSROOT/proc/cpuinfo"
}

export STYLIZE_TEST_WRAPPER=qemu-aarch64
export GST_PLUGIN_SYSTEM_PATH_1_0=$ARM64_SYSROOT/usr/lib/aarch64-linux-gnu/gstreamer-1.0
export GST_PLUGIN_PATH_1_0=
export GST_REGISTRY_1_0=$PWD/target/arm64-gst-registry.bin
export GST_REGISTRY_FORK=no
export QEMU_CPU=neoverse-n1
export STYLIZE_TEST_INFERENCE_SIZE=128

passed=0
failed=0
run() {
  local what=$1; shift
  say "$what (qemu-aarch64 -cpu $QEMU_CPU)"
  fake_cpuinfo "$QEMU_CPU"
  local start=$SECONDS log
  log=$(mktemp)
  if cargo test --release --target "$CROSS_TARGET" --quiet "$@" 2>&1 | tee "$log" | grep -av '^INFO: \|^WARNING: \[npu'; then :; fi
  local p f
  p=$(grep -ao '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(grep -ao '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
  if grep -aq '^error: \|FAILED\|panicked' "$log" && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  say "$what: $p passed, $f failed in $((SECONDS - start)) s"
  rm -f "$log"
}

run "core unit tests" -p stylize --lib
run "element unit tests" -p gst-plugin-stylize --lib
run "LiteRT ABI" --test litert_abi
run "model patching" --test tflite_patch
# The gst_launch tests run the host's gst-launch-1.0, which cannot load an arm64 plugin;
# the interlaced H.264 file needs an H.264 decoder, which the arm64 sysroot does not
# carry (gstreamer1.0-libav pulls in FFmpeg).
run "element pipelines" --test element -- --skip gst_launch --skip an_interlaced_h264_file
run "fidelity at the inference size" --test fidelity -- at_the_inference_size
run "daemon smoke test" --test daemon -- --exact set_style_changes_the_property_and_the_frames_and_list_matches_the_store
QEMU_CPU=cortex-a72 run "CPU fallback on Cortex-A72" --test element -- auto_accelerator

say "aarch64 under qemu: $passed passed, $failed failed"
say "emulated speed (qemu-user on $(uname -m), NOT a real-board figure)"
fake_cpuinfo "$QEMU_CPU"
cargo bench --target "$CROSS_TARGET" --bench stylize --quiet -- --quick --no-peer --frames 4 \
  --out target/bench-arm64-emulated 2>&1 | grep -av '^INFO: \|^WARNING: '
scripts/package-deb.sh --arch arm64
[ "$failed" -eq 0 ]
