#!/usr/bin/env bash
# Makes the README's before/after pictures with the stylize element itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
content=${1:-../shared/content}
out=docs/img
mkdir -p "$out"
picture() { # content-file width height style output
  local caps="video/x-raw,width=$2,height=$3"
  gst-launch-1.0 -q filesrc location="$content/$1" ! jpegdec ! videoconvert ! videoscale ! "$caps" \
    ! ${4:+stylize style=$4 !} videoconvert ! jpegenc quality=85 ! filesink location="$out/$5" 2>/dev/null
  echo "wrote $out/$5"
}
picture golden_gate.jpg 480 360 "" golden_gate.jpg
picture golden_gate.jpg 480 360 starry_night golden_gate_starry_night.jpg
picture golden_gate.jpg 480 360 monet golden_gate_monet.jpg
picture dog_and_cats.jpg 480 240 "" dog_and_cats.jpg
picture dog_and_cats.jpg 480 240 kandinsky dog_and_cats_kandinsky.jpg
picture dog_and_cats.jpg 480 240 great_wave dog_and_cats_great_wave.jpg
