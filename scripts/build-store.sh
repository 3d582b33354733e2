#!/usr/bin/env bash
# Rebuilds the default style store, models/styles.json, from the named style images
# with stylize-store (the prediction network). Usage: scripts/build-store.sh [STYLES_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
styles=${1:-../shared/styles}
store=models/styles.json
cargo build --quiet --release --bin stylize-store
bin=target/release/stylize-store
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS='|' read -r id file name; do
  "$bin" add --store "$tmp/styles.json" --id "$id" --name "$name" "$styles/$file"
done <<'LIST'
monet|monet.png|Claude Monet, Impression, Sunrise (1872)
monet_charing_cross|monet_charing_cross.jpg|Claude Monet, Charing Cross Bridge (1899-1904)
starry_night|starry_night.jpg|Vincent van Gogh, The Starry Night (1889)
scream|scream.jpg|Edvard Munch, The Scream (1893)
great_wave|great_wave.jpg|Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)
kandinsky|kandinsky.jpg|Wassily Kandinsky, Composition VII (1913)
delaunay|delaunay.jpg|Robert Delaunay, La Ville de Paris (1910-12)
klimt|klimt.png|Gustav Klimt, The Kiss (1907-08)
turner|turner.jpg|J. M. W. Turner, The Shipwreck of the Minotaur
matisse|matisse.jpg|Henri Matisse, Woman with a Hat (1905)
udnie|udnie.jpg|Francis Picabia, Udnie (1913)
LIST
mv "$tmp/styles.json" "$store"
echo "wrote $store"
