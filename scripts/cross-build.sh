#!/usr/bin/env bash
# Cross-builds the plugin, stylized, stylizectl, stylize-store and stylize-models for
# aarch64-unknown-linux-gnu against Debian's arm64 GStreamer, and fetches the aarch64
# LiteRT runtime. Output: target/aarch64-unknown-linux-gnu/release/.
# Usage: scripts/cross-build.sh [--tests]   (--tests also builds the test binaries)
# Environment: STYLIZE_SKIP_APT=1 to skip the apt packages.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1mcross-build:\033[0m %s\n' "$*"; }

scripts/apt-ensure.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu
scripts/arm64-sysroot.sh
scripts/setup-litert.sh --arch aarch64 --dest third_party/litert-aarch64
# shellcheck source=scripts/cross-env.sh
source scripts/cross-env.sh
say "building for $CROSS_TARGET"
cargo build --release --target "$CROSS_TARGET" --workspace --quiet
if [ "${1:-}" = --tests ]; then
  cargo test --release --target "$CROSS_TARGET" --workspace --no-run --quiet 2>/dev/null
fi
say "done: target/$CROSS_TARGET/release/{libgststylize.so,stylized,stylizectl,stylize-store,stylize-models}"
