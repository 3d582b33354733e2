#!/usr/bin/env bash
# All set-up for a Debian 12 machine, safe to run again (each step skips what is done):
# apt packages, the Rust toolchain check, the LiteRT runtime, the models (through the
# fetch step), the Python venv for the reference implementation, and the release build.
#
# Environment:
#   STYLIZE_MODEL_MIRROR  folder with copies of the model files (default: ../shared/models
#                         when it exists, else download from the official URLs)
#   STYLIZE_SKIP_APT=1    do not install apt packages
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

APT_PACKAGES=(
  build-essential pkg-config curl ca-certificates unzip
  python3 python3-pip python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-tools gstreamer1.0-x gstreamer1.0-libav
  dbus-daemon systemd
  # Cameras and displays on boards: libcamerasrc (Raspberry Pi CSI cameras), and for the
  # display tests a virtual X server (Xvfb) and xwd to capture its screen.
  gstreamer1.0-libcamera xvfb x11-apps
  # The RTSP stream (gst-rtsp-server).
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev
)

scripts/apt-ensure.sh "${APT_PACKAGES[@]}"

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: installing the stable Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi

scripts/setup-litert.sh

mirror=${STYLIZE_MODEL_MIRROR:-}
if [ -z "$mirror" ] && [ -d ../shared/models ]; then mirror=../shared/models; fi
say "building"
cargo build --release --workspace --quiet
say "fetching models${mirror:+ from mirror $mirror}"
if [ -n "$mirror" ]; then
  target/release/stylize-models fetch --mirror "$mirror"
else
  target/release/stylize-models fetch
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import ai_edge_litert, numpy, PIL, tflite' 2>/dev/null; then
  say "creating .venv for the reference implementation"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    ai-edge-litert==2.3.0 numpy pillow tflite
fi
say "done. Plugin: $PWD/target/release/libgststylize.so"
