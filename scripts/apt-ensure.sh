#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet (with sudo unless root).
# Does nothing with STYLIZE_SKIP_APT=1. Usage: scripts/apt-ensure.sh PACKAGE...
set -euo pipefail
[ "${STYLIZE_SKIP_APT:-0}" != 1 ] || exit 0
missing=()
for p in "$@"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "apt: packages present"
  exit 0
fi
echo "apt: installing ${missing[*]}"
sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
