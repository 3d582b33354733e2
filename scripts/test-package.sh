#!/usr/bin/env bash
# Builds the amd64 package, installs it on this machine with apt, and checks the
# installed product: gst-inspect-1.0 finds the element in the system plugin folder,
# systemd-analyze verifies the installed unit, and `stylized --config
# /etc/stylized/config.toml` runs with a test source (on a private bus) and answers
# stylizectl. The package is purged afterwards. Needs root (CI runs as root).
# Usage: sudo scripts/test-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1mtest-package:\033[0m %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "test-package: run as root (it installs the package)" >&2; exit 1; }

scripts/package-deb.sh --arch amd64
deb=$(ls target/debian/stylize_*_amd64.deb)
work=$(mktemp -d)
bus_pid=
cleanup() {
  [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq stylize >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The postinst fetches the models with curl: the package must pull it in.
dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep -qw curl \
  || { echo "test-package: curl is missing from Depends (the postinst's fetch needs it)" >&2; exit 1; }
say "installing $deb ($(du -h "$deb" | cut -f1))"
dpkg-query -W stylize >/dev/null 2>&1 && apt-get purge -y -qq stylize >/dev/null
mirror=${STYLIZE_MODEL_MIRROR:-}
if [ -z "$mirror" ] && [ -d ../shared/models ]; then mirror=$(realpath ../shared/models); fi
STYLIZE_MODEL_MIRROR=$mirror DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "./$deb" 2>&1 | grep -v '^\(Selecting\|Preparing\|(Reading\)' || true
dpkg-query -W -f='${Status}\n' stylize | grep -qx 'install ok installed'

# Nothing from the checkout: the installed copy must stand alone.
unset GST_PLUGIN_PATH GST_PLUGIN_PATH_1_0 STYLIZE_LITERT_LIB STYLIZE_MODEL_DIR STYLIZE_STORE
export GST_REGISTRY_1_0=$work/registry.bin
cd "$work"

say "gst-inspect-1.0 stylize"
inspect=$(gst-inspect-1.0 stylize)
grep -E '^  (Filename|Version|Long-name) ' <<<"$inspect"
grep -q "lib/x86_64-linux-gnu/gstreamer-1.0/libgststylize.so" <<<"$inspect"

say "systemd-analyze verify /lib/systemd/system/stylized.service"
systemd-analyze verify /lib/systemd/system/stylized.service
id stylize
# The config may hold the RTSP stream's password.
owner=$(stat -c '%U:%G %a' /etc/stylized/config.toml)
[ "$owner" = "root:stylize 640" ] \
  || { echo "test-package: /etc/stylized/config.toml is $owner, not root:stylize 640" >&2; exit 1; }

say "stylize-models verify (models fetched by the postinst)"
stylize-models verify

say "a pipeline through the installed plugin"
gst-launch-1.0 -q videotestsrc num-buffers=3 ! video/x-raw,width=160,height=120 ! stylize style=monet ! fakesink

say "stylized --config /etc/stylized/config.toml --source test (private bus)"
bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=1 --nopidfile)
export DBUS_SESSION_BUS_ADDRESS=${bus%%$'\n'*}
bus_pid=${bus##*$'\n'}
stylized --config /etc/stylized/config.toml --session --source test --recordings "$work/rec" \
  2> "$work/stylized.log" &
daemon=$!
state=
for _ in $(seq 100); do
  state=$(stylizectl --session --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || true)
  [ "$state" = running ] && break
  sleep 0.2
done
stylizectl --session status
[ "$state" = running ] || { cat "$work/stylized.log"; exit 1; }
stylizectl --session set starry_night
[ "$(stylizectl --session --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["style"])')" = starry_night ]
kill -TERM "$daemon"
wait "$daemon"
say "stylized exited $?: the installed package works"
