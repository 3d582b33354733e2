#!/usr/bin/env bash
# Fetches the pinned LiteRT runtime (ai-edge-litert==2.3.0 from PyPI), checks the wheel's
# sha256 and unpacks libLiteRt.so and the GPU accelerator into third_party/litert/.
# Usage: scripts/setup-litert.sh [--arch x86_64|aarch64] [--dest DIR]
# The default folder is third_party/litert for this machine's architecture and
# third_party/litert-ARCH for another one (the cross build's runtime).
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.3.0
arch=$(uname -m)
dest=
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    *) echo "usage: $0 [--arch x86_64|aarch64] [--dest DIR]" >&2; exit 2 ;;
  esac
done

case "$arch" in
  x86_64|amd64) arch=x86_64; sha=1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23 ;;
  aarch64|arm64) arch=aarch64; sha=853fc608f96da87bd5f3458465dfb9abbf18d5ae6b94eceacead407146f175ae ;;
  *) echo "setup-litert: no LiteRT wheel for architecture $arch" >&2; exit 1 ;;
esac
if [ -z "$dest" ]; then
  if [ "$arch" = "$(uname -m)" ]; then dest=third_party/litert; else dest=third_party/litert-$arch; fi
fi
wheel=ai_edge_litert-$version-cp311-cp311-manylinux_2_27_$arch.whl

if [ -f "$dest/libLiteRt.so" ] && [ "$(cat "$dest/WHEEL_SHA256" 2>/dev/null)" = "$sha" ]; then
  echo "setup-litert: $dest already holds LiteRT $version ($arch)"
  exit 0
fi

pip=(python3 -m pip)
"${pip[@]}" --version >/dev/null 2>&1 || { echo "setup-litert: pip is missing (apt-get install python3-pip)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-litert: downloading ai-edge-litert==$version ($arch) from PyPI"
"${pip[@]}" download --quiet --no-deps --only-binary=:all: \
  --platform "manylinux_2_27_$arch" --python-version 3.11 --implementation cp \
  "ai-edge-litert==$version" -d "$tmp"
got=$(sha256sum "$tmp/$wheel" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "setup-litert: sha256 mismatch for $wheel: got $got, expected $sha" >&2
  exit 1
fi
python3 - "$tmp/$wheel" "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("ai_edge_litert/libLiteRt.so", "ai_edge_litert/libLiteRtWebGpuAccelerator.so"):
        z.extract(name, sys.argv[2])
PY
mkdir -p "$dest"
install -m 0644 "$tmp/x/ai_edge_litert/libLiteRt.so" "$tmp/x/ai_edge_litert/libLiteRtWebGpuAccelerator.so" "$dest/"
echo "$sha" > "$dest/WHEEL_SHA256"
echo "setup-litert: installed LiteRT $version ($arch) in $dest"
