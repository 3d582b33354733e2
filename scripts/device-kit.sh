#!/usr/bin/env bash
# Packs what the GPU check needs on the device machine, which has no Rust, GStreamer or
# LiteRT: target/device-kit/kit.tar.xz holds the benchmark and gst-launch-1.0 with the
# libraries they load (not glibc or libstdc++, which the machine has), the plugin, the
# GStreamer plugins of the test pipelines, LiteRT, the models and the Vulkan loader.
#
#   scripts/device-kit.sh
#   then, with the device tool: scripts/device-gpu-check.sh, carry ["target/device-kit"]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mdevice-kit:\033[0m %s\n' "$*"; }

kit=target/device-kit
stage=$kit/stage
rm -rf "$kit"
mkdir -p "$stage"/{bin,lib,gst,plugin,litert,models}

scripts/apt-ensure.sh jq xz-utils binutils libvulkan1
say "building the plugin and the benchmark"
cargo build --release -p gst-plugin-stylize --quiet
bench=$(cargo bench --bench stylize --no-run --message-format=json \
  | jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["bench"]) | .executable')
[ -x "$bench" ] || { echo "device-kit: no benchmark executable" >&2; exit 1; }

gst_plugins=/usr/lib/$(gcc -dumpmachine)/gstreamer-1.0
cp "$bench" "$stage/bin/bench"
cp "$(command -v gst-launch-1.0)" "$stage/bin/"
# Apart from the others: the benchmark registers the element itself.
cp target/release/libgststylize.so "$stage/plugin/"
for p in coreelements videotestsrc; do cp "$gst_plugins/libgst$p.so" "$stage/gst/"; done
cp third_party/litert/{libLiteRt.so,libLiteRtWebGpuAccelerator.so,WHEEL_SHA256} "$stage/litert/"
models=${STYLIZE_MODEL_DIR:-models/cache}
for role in transfer-fp16 transfer-int8 prediction-int8; do
  file=$(jq -r --arg r "$role" '.models[] | select(.role == $r) | .file' models/manifest.json)
  cp "$models/$file" "$stage/models/"
done
cp models/styles.json "$stage/"

# The machine provides these; ours could be older than what its GPU driver needs.
base='^(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so'
libs=$(for f in "$stage"/bin/* "$stage"/{gst,plugin,litert}/*.so; do ldd "$f"; done \
  | awk '$3 ~ /^\// {print $3}' | sort -u)
for lib in $libs; do
  basename "$lib" | grep -Eq "$base" || cp -L "$lib" "$stage/lib/"
done
# Dawn opens the Vulkan loader by name; the NVIDIA driver's GLX/EGL parts need glvnd.
for name in libvulkan.so.1 libGLdispatch.so.0 libGLX.so.0 libEGL.so.1 libGL.so.1 libOpenGL.so.0; do
  path=$(ldconfig -p | awk -v n="$name" '$1 == n && /x86-64/ && !found {print $NF; found = 1}')
  if [ -n "$path" ]; then cp -L "$path" "$stage/lib/"; fi
done
strip --strip-debug "$stage"/bin/* "$stage"/gst/*.so "$stage"/plugin/*.so

tar -C "$stage" -cJf "$kit/kit.tar.xz" .
rm -rf "$stage"
say "$kit/kit.tar.xz: $(du -h "$kit/kit.tar.xz" | cut -f1)"
