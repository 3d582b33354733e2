#!/usr/bin/env bash
# Installs stylize system-wide: the GStreamer plugin, stylized, stylizectl, stylize-store,
# stylize-models, the LiteRT runtime, the models, the default style store and config,
# the systemd unit and the D-Bus policy, and a `stylize` system user and group.
# Run scripts/setup.sh first (or scripts/cross-build.sh for --target aarch64-...).
#
# Usage: sudo scripts/install.sh [--destdir DIR] [--target TRIPLE] [--no-models]
#   --destdir DIR   stage the files under DIR (no user, no service reload): packaging
#   --target T      install the cross build for T (aarch64-unknown-linux-gnu)
#   --no-models     leave the models out (the package fetches them in its postinst)
set -euo pipefail
cd "$(dirname "$0")/.."
destdir=
target=
models=1
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) destdir=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --no-models) models=0; shift ;;
    *) echo "usage: $0 [--destdir DIR] [--target TRIPLE] [--no-models]" >&2; exit 2 ;;
  esac
done
if [ -n "$target" ]; then
  build=target/$target/release
  arch=${target%%-*}
else
  build=target/release
  arch=$(uname -m)
fi
triplet=$arch-linux-gnu
litert=third_party/litert-$arch
[ -f "$litert/libLiteRt.so" ] || litert=third_party/litert
plugindir=/usr/lib/$triplet/gstreamer-1.0
for f in "$build/libgststylize.so" "$build/stylized" "$litert/libLiteRt.so"; do
  [ -e "$f" ] || { echo "install: $f is missing; run scripts/setup.sh (or scripts/cross-build.sh) first" >&2; exit 1; }
done
if [ "$(od -An -tx1 -j18 -N1 "$litert/libLiteRt.so" | tr -d ' ')" != "$(od -An -tx1 -j18 -N1 "$build/stylized" | tr -d ' ')" ]; then
  echo "install: $litert/libLiteRt.so is not built for $arch (run scripts/setup-litert.sh --arch $arch)" >&2
  exit 1
fi

d() { echo "$destdir$1"; }
for bin in stylized stylizectl stylize-store stylize-models; do
  install -Dm0755 "$build/$bin" "$(d /usr/bin/$bin)"
done
install -Dm0644 "$build/libgststylize.so" "$(d "$plugindir/libgststylize.so")"
install -Dm0644 "$litert/libLiteRt.so" "$(d /usr/lib/stylize/litert/libLiteRt.so)"
install -Dm0644 "$litert/libLiteRtWebGpuAccelerator.so" "$(d /usr/lib/stylize/litert/libLiteRtWebGpuAccelerator.so)"
install -Dm0644 models/styles.json "$(d /usr/share/stylize/styles.json)"
if [ "$models" = 1 ]; then
  for m in models/cache/*.tflite; do install -Dm0644 "$m" "$(d /var/lib/stylize/models/$(basename "$m"))"; done
fi
install -Dm0644 README.md "$(d /usr/share/doc/stylize/README.md)"
# 0640: the config may hold the RTSP stream's password ([stream]); the group stylize
# (the daemon) reads it, once the group exists (below, or the package's postinst).
if [ ! -e "$(d /etc/stylized/config.toml)" ]; then
  install -Dm0640 config/stylized.toml "$(d /etc/stylized/config.toml)"
fi
install -Dm0644 systemd/stylized.service "$(d /lib/systemd/system/stylized.service)"
install -Dm0644 systemd/io.github.stylize.Stylized1.conf "$(d /usr/share/dbus-1/system.d/io.github.stylize.Stylized1.conf)"

if [ -z "$destdir" ]; then
  getent group stylize >/dev/null || groupadd --system stylize
  getent passwd stylize >/dev/null || useradd --system --gid stylize --groups video \
    --home-dir /var/lib/stylized --no-create-home --shell /usr/sbin/nologin stylize
  chown root:stylize /etc/stylized/config.toml
  chmod 0640 /etc/stylized/config.toml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reload dbus 2>/dev/null || true
  fi
  echo "installed. Start it with: systemctl enable --now stylized"
fi
