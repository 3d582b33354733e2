#!/usr/bin/env bash
# Builds an arm64 sysroot from Debian's own packages, without touching the host's dpkg:
# a private apt state resolves and downloads the arm64 .debs, and `dpkg -x` unpacks them.
# The cross build links against it (pkg-config) and qemu-user runs binaries with it (-L).
# Usage: scripts/arm64-sysroot.sh [DIR]   (default target/arm64-sysroot)
set -euo pipefail
cd "$(dirname "$0")/.."

sysroot=${1:-target/arm64-sysroot}
apt_root=target/arm64-apt
packages=(
  libc6 libstdc++6 libgcc-s1
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  # x264enc, as on a board with the package's Recommends (recordings, the stream, tests).
  gstreamer1.0-plugins-ugly
)
stamp="$sysroot/.packages"
layout=2  # bump when the unpacking below changes
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$layout ${packages[*]}" ]; then
  echo "arm64-sysroot: $sysroot is ready"
  exit 0
fi

mkdir -p "$apt_root"/{lists/partial,archives/partial,etc} "$apt_root/dpkg"
: > "$apt_root/dpkg/status"
apt_opts=(
  -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
  -o "Dir::State::Lists=$PWD/$apt_root/lists" -o "Dir::State::status=$PWD/$apt_root/dpkg/status"
  -o "Dir::Cache::Archives=$PWD/$apt_root/archives" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
echo "arm64-sysroot: resolving arm64 packages with a private apt state in $apt_root"
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -qq -y --download-only --no-install-recommends "${packages[@]}" >/dev/null

echo "arm64-sysroot: unpacking $(ls "$apt_root"/archives/*.deb | wc -l) packages into $sysroot"
rm -rf "$sysroot"
mkdir -p "$sysroot"
for deb in "$apt_root"/archives/*.deb; do
  dpkg-deb -x "$deb" "$sysroot"
done
# No arm64 programs: under qemu -L they would shadow the host's (dbus-daemon, kill, sh)
# when a test starts them.
rm -rf "$sysroot"/{bin,sbin,usr/bin,usr/sbin,usr/games}
# Absolute links point into the host; make them point inside the sysroot.
while IFS= read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link" ;;
  esac
done < <(find "$sysroot" -type l)
echo "$layout ${packages[*]}" > "$stamp"
echo "arm64-sysroot: ready ($(du -sh "$sysroot" | cut -f1))"
