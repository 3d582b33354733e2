#!/usr/bin/env bash
# Runs the test suite with the real runtime, models and pipelines. Does the set-up first
# (it skips what is already done), so it works on a fresh clone, and installs lavapipe
# for the GPU tests (scripts/setup-test-gpu.sh). Four parts:
#   1. the tests on this machine (cargo test);
#   2. the amd64 Debian package, installed and smoke-tested (scripts/test-package.sh;
#      needs root, skipped otherwise);
#   3. the service's sandbox rated by systemd-analyze security, at most 3.0, in the
#      checkout and in the package built by part 2 (scripts/check-exposure.sh);
#   4. the aarch64 cross build, tested under qemu-user (scripts/test-arm64.sh).
# Usage: scripts/test.sh [TEST FILTER...]   (a filter runs part 1 only)
# Environment: STYLIZE_TEST_PACKAGE=0, STYLIZE_TEST_ARM64=0 skip parts 2 and 4.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The GPU tests (tests/gpu.rs) run on Mesa's software Vulkan driver; without it they
# fail and say so.
scripts/setup-test-gpu.sh || echo "test.sh: lavapipe could not be installed; the GPU tests will fail" >&2
export GST_PLUGIN_PATH="$PWD/target/release"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
part() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
part "tests on $(uname -m)"
cargo test --release --workspace -- --test-threads=2 "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$log")
results=("$(uname -m): $summary")

if [ $# -eq 0 ] && [ "${STYLIZE_TEST_PACKAGE:-1}" != 0 ]; then
  part "Debian package (amd64): install and smoke test"
  if [ "$(id -u)" -ne 0 ]; then
    results+=("package: skipped (needs root)")
  elif (unset GST_PLUGIN_PATH; scripts/test-package.sh); then
    results+=("package: passed")
  else
    results+=("package: FAILED"); status=1
  fi
fi
if [ $# -eq 0 ]; then
  part "systemd unit: exposure (systemd-analyze security)"
  # The package's copy too, when part 2 has just built and passed it.
  deb=
  if printf '%s\n' "${results[@]}" | grep -qx 'package: passed'; then
    deb=$(ls target/debian/stylize_*_amd64.deb)
  fi
  if scripts/check-exposure.sh ${deb:+--deb "$deb"} 2>&1 | tee "$log"; then
    results+=("exposure: $(grep -ao 'exposure [0-9.]*' "$log" | tail -1 | cut -d' ' -f2) (at most ${STYLIZE_EXPOSURE_MAX:-3.0})${deb:+, same in the package}")
  else
    results+=("exposure: FAILED"); status=1
  fi
fi
if [ $# -eq 0 ] && [ "${STYLIZE_TEST_ARM64:-1}" != 0 ]; then
  part "aarch64 under qemu-user"
  unset GST_PLUGIN_PATH
  if scripts/test-arm64.sh 2>&1 | tee "$log"; then :; else status=1; fi
  results+=("$(grep -ao 'aarch64 under qemu: .*' "$log" | tail -1 || echo 'aarch64: did not finish')")
  grep -q 'aarch64 under qemu: [0-9]* passed, 0 failed' "$log" || status=1
fi
part "summary"
printf '%s\n' "${results[@]}"
exit "$status"
