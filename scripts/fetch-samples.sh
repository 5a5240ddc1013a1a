#!/usr/bin/env bash
# Real sample footage shipped by Debian (opencv-doc): vtest.avi and friends, plus H.264 copies.
# Cached in .vf/samples; prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${VF_SAMPLES_DIR:-$PWD/.vf/samples}
mkdir -p "$DIR"
if [ ! -f "$DIR/vtest.avi" ]; then
  tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc >/dev/null; } )
  dpkg-deb -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  src="$tmp/x/usr/share/doc/opencv-doc/examples/data"
  for f in vtest.avi tree.avi Megamind.avi Megamind_bugy.avi rubberwhale1.png rubberwhale2.png graf1.png graf3.png lena.jpg box.png; do
    [ -f "$src/$f" ] && cp "$src/$f" "$DIR/" || true
    [ -f "$src/$f.gz" ] && gunzip -c "$src/$f.gz" > "$DIR/$f" || true
  done
  rm -rf "$tmp"
fi
if [ ! -f "$DIR/vtest.mp4" ]; then
  ffmpeg -loglevel error -y -i "$DIR/vtest.avi" -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 10 -bf 0 -an -movflags +faststart "$DIR/vtest.mp4"
fi
if [ ! -f "$DIR/vtest720.mp4" ]; then
  ffmpeg -loglevel error -y -i "$DIR/vtest.avi" -vf scale=1280:720 -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 10 -bf 0 -an -movflags +faststart "$DIR/vtest720.mp4"
fi
echo "$DIR"
