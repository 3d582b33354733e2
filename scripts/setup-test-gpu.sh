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
sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  list=/etc/apt/sources.list.d/stylize-bookworm-backports.list
  if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The mirror the machine already uses for bookworm itself: a deb822 URIs field, a
    # one-line entry (options in brackets skipped), or the first entry of a
    # mirror+file: list.
    mirror=$( { awk -v RS= -F'\n' '{ u = ""; s = 0
                  for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { split($i, a, " "); u = a[2] }
                    if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) s = 1
                  }
                  if (s && u != "") print u }' /etc/apt/sources.list.d/*.sources 2>/dev/null;
                grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
                  sed 's/\[[^]]*\]//' | awk '$3 == "bookworm" {print $2}'; } |
              head -1 || true)
    case "$mirror" in
      mirror+file:*) mirror=$(grep -v '^#' "${mirror#mirror+file:}" 2>/dev/null | awk 'NF {print $1; exit}' || true) ;;
    esac
    if [ -z "$mirror" ]; then
      echo "setup-test-gpu: no Debian mirror found in /etc/apt/sources.list*: add the bookworm-backports suite by hand" >&2
      exit 1
    fi
    say "adding bookworm-backports from $mirror"
    echo "deb $mirror bookworm-backports main" | "${sudo[@]}" tee "$list" >/dev/null
  fi
  say "installing mesa-vulkan-drivers and libvulkan1 from bookworm-backports"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports mesa-vulkan-drivers libvulkan1
else
  # Newer releases ship Mesa >= 24 in their main suite.
  scripts/apt-ensure.sh mesa-vulkan-drivers libvulkan1
fi
have=$(mesa_major || true)
if [ -z "$have" ] || [ "$have" -lt 24 ]; then
  echo "setup-test-gpu: mesa-vulkan-drivers ${have:-(none)}.x is too old for the GPU accelerator (needs 24 or later)" >&2
  exit 1
fi
say "lavapipe (mesa-vulkan-drivers $have.x) installed"
