#!/usr/bin/env bash
# Test set-up only (a user's set-up does not need it): Mesa's software Vulkan driver
# (lavapipe) from bookworm-backports, so that the GPU tests (tests/gpu.rs) run the
# WebGPU accelerator without a GPU. Debian 12's own Mesa 22.3 is refused by the
# accelerator ("shaderUniform*ArrayDynamicIndexing required"); the backports' 25.x works.
# The suite is added with the same mirror as the machine's own Debian sources.
# Safe to run again. Does nothing with STYLIZE_SKIP_APT=1.
set -euo pipefail
say() { printf '\033[1msetup-test-gpu:\033[0m %s\n' "$*"; }
[ "${STYLIZE_SKIP_APT:-0}" != 1 ] || exit 0

mesa_major() {
  dpkg-query -W -f='${db:Status-Status} ${Version}' mesa-vulkan-drivers 2>/dev/null |
    awk '$1 == "installed" { split($2, v, /[.:]/); print (v[1] ~ /^[0-9]+$/ && $2 !~ /:/) ? v[1] : v[2] }'
}
have=$(mesa_major || true)
if [ -n "$have" ] && [ "$have" -ge 24 ] && dpkg-query -W -f='${db:Status-Status}' libvulkan1 2>/dev/null | grep -qx installed; then
  say "lavapipe (mesa-vulkan-drivers $have.x) present"
  exit 0
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  # Newer releases ship Mesa >= 24 in their main suite.
  scripts/apt-ensure.sh mesa-vulkan-drivers libvulkan1
  exit 0
fi
sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
list=/etc/apt/sources.list.d/stylize-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # The mirror the machine already uses for bookworm itself.
  mirror=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
              grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '$3 == "bookworm" {print $2}'; } |
            grep -v -- '-security' | grep '/debian/\?$' | head -1 || true)
  if [ -z "$mirror" ]; then
    echo "setup-test-gpu: no Debian mirror found in /etc/apt/sources.list*: add bookworm-backports by hand" >&2
    exit 1
  fi
  say "adding bookworm-backports from $mirror"
  echo "deb $mirror bookworm-backports main" | "${sudo[@]}" tee "$list" >/dev/null
fi
say "installing mesa-vulkan-drivers and libvulkan1 from bookworm-backports"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  -t bookworm-backports mesa-vulkan-drivers libvulkan1
say "lavapipe (mesa-vulkan-drivers $(mesa_major).x) installed"
