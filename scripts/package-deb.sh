#!/usr/bin/env bash
# Builds the Debian package from a finished build:
#   amd64: target/release (scripts/setup.sh)
#   arm64: target/aarch64-unknown-linux-gnu/release (scripts/cross-build.sh)
# The package bundles the LiteRT runtime (no Debian package has it) and depends on
# Debian's GStreamer (the plugin must load into the system's GStreamer). Models are
# fetched by the postinst. Output: target/debian/stylize_VERSION_ARCH.deb
# Usage: scripts/package-deb.sh [--arch amd64|arm64]
set -euo pipefail
cd "$(dirname "$0")/.."

arch=$(dpkg --print-architecture)
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    *) echo "usage: $0 [--arch amd64|arm64]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64) target_args=(); objcopy=objcopy; [ "$(uname -m)" = x86_64 ] || target_args=(--target x86_64-unknown-linux-gnu) ;;
  arm64) target_args=(--target aarch64-unknown-linux-gnu); objcopy=aarch64-linux-gnu-objcopy ;;
  *) echo "package-deb: unsupported architecture $arch" >&2; exit 2 ;;
esac
if [ "$arch" = arm64 ] && [ "$(uname -m)" = aarch64 ]; then target_args=(); objcopy=objcopy; fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
stage=target/debian/stage-$arch
rm -rf "$stage"
scripts/install.sh --destdir "$stage" "${target_args[@]}" --no-models >/dev/null
# Debug info makes up most of a release binary; the package ships without it.
find "$stage/usr/bin" "$stage/usr/lib" -type f \( -name '*.so' -o -perm -u+x \) \
  ! -path '*/stylize/litert/*' -exec "$objcopy" --strip-debug {} \;

mkdir -p "$stage/DEBIAN"
install -m0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
install -m0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"

deb=target/debian/stylize_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "package-deb: $deb ($(du -h "$deb" | cut -f1))"
