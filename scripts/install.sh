#!/usr/bin/env bash
# Installs stylize system-wide: the GStreamer plugin, stylized, stylizectl, stylize-store,
# stylize-models, the LiteRT runtime, the models, the default style store and config,
# the systemd unit and the D-Bus policy, and a `stylize` system user and group.
# Run scripts/setup.sh first. Usage: sudo scripts/install.sh [--destdir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
destdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) destdir=$2; shift 2 ;;
    *) echo "usage: $0 [--destdir DIR]" >&2; exit 2 ;;
  esac
done
triplet=$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")
plugindir=/usr/lib/$triplet/gstreamer-1.0
for f in target/release/libgststylize.so target/release/stylized third_party/litert/libLiteRt.so; do
  [ -e "$f" ] || { echo "install: $f is missing; run scripts/setup.sh first" >&2; exit 1; }
done

d() { echo "$destdir$1"; }
install -Dm0755 target/release/stylized "$(d /usr/bin/stylized)"
install -Dm0755 target/release/stylizectl "$(d /usr/bin/stylizectl)"
install -Dm0755 target/release/stylize-store "$(d /usr/bin/stylize-store)"
install -Dm0755 target/release/stylize-models "$(d /usr/bin/stylize-models)"
install -Dm0644 target/release/libgststylize.so "$(d "$plugindir/libgststylize.so")"
install -Dm0644 third_party/litert/libLiteRt.so "$(d /usr/lib/stylize/litert/libLiteRt.so)"
install -Dm0644 third_party/litert/libLiteRtWebGpuAccelerator.so "$(d /usr/lib/stylize/litert/libLiteRtWebGpuAccelerator.so)"
install -Dm0644 models/styles.json "$(d /usr/share/stylize/styles.json)"
for m in models/cache/*.tflite; do install -Dm0644 "$m" "$(d /usr/share/stylize/models/$(basename "$m"))"; done
install -Dm0644 README.md "$(d /usr/share/doc/stylize/README.md)"
if [ ! -e "$(d /etc/stylized/config.toml)" ]; then
  install -Dm0644 config/stylized.toml "$(d /etc/stylized/config.toml)"
fi
install -Dm0644 systemd/stylized.service "$(d /lib/systemd/system/stylized.service)"
install -Dm0644 systemd/io.github.stylize.Stylized1.conf "$(d /usr/share/dbus-1/system.d/io.github.stylize.Stylized1.conf)"

if [ -z "$destdir" ]; then
  getent group stylize >/dev/null || groupadd --system stylize
  getent passwd stylize >/dev/null || useradd --system --gid stylize --groups video \
    --home-dir /var/lib/stylized --no-create-home --shell /usr/sbin/nologin stylize
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reload dbus 2>/dev/null || true
  fi
  echo "installed. Start it with: systemctl enable --now stylized"
fi
