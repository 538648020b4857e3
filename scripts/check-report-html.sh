#!/usr/bin/env bash
# Render a perf-runner HTML report in headless Chromium and check the screenshot is not blank.
#
# Usage: scripts/check-report-html.sh REPORT.html OUT.png
#
# Exit 0 when OUT.png exists, decodes as a PNG, and is not (nearly) one colour; 1 otherwise;
# 2 on usage errors or when no chromium is installed. Needs only chromium and python3 (stdlib).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REPORT.html OUT.png" >&2
  exit 2
fi
report=$1
out=$2
if [ ! -f "$report" ]; then
  echo "error: $report: no such file" >&2
  exit 2
fi
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "error: no chromium on PATH (Debian: apt-get install chromium)" >&2
  exit 2
fi

abs=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
# Chromium prints harmless D-Bus/GPU warnings on stderr; keep them for failures only.
if ! timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --screenshot="$out" --window-size=1280,2000 \
    "file://$abs" >"$profile/chromium.log" 2>&1; then
  echo "error: $browser failed:" >&2
  tail -n 20 "$profile/chromium.log" >&2
  exit 1
fi

python3 - "$out" <<'PY'
"""Decode the PNG (stdlib only: zlib + unfiltering) and check it is not blank."""
import struct
import sys
import zlib

path = sys.argv[1]
try:
    data = open(path, "rb").read()
except OSError as e:
    sys.exit(f"error: no screenshot: {e}")
if len(data) < 100 or data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"error: {path} is not a PNG ({len(data)} bytes)")
pos, idat, width = 8, b"", 0
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
if not width or depth != 8 or colour not in (2, 6):
    sys.exit(f"error: unexpected PNG format (depth {depth}, colour type {colour})")
bpp = 3 if colour == 2 else 4
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
counts = {}
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1:
            line[i] = (line[i] + a) & 255
        elif f == 2:
            line[i] = (line[i] + b) & 255
        elif f == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, width, 4):
            px = bytes(line[x * bpp:x * bpp + 3])
            counts[px] = counts.get(px, 0) + 1
    prev = line
total = sum(counts.values())
top = max(counts.values())
coloured = sum(n for px, n in counts.items() if max(px) - min(px) > 40)
print(f"{path}: {width}x{height}, {len(counts)} distinct colours sampled, "
      f"dominant {100 * top / total:.1f} %, saturated pixels {100 * coloured / total:.2f} %")
if len(counts) < 8 or top / total > 0.995:
    sys.exit("error: the screenshot is blank (one colour)")
if coloured == 0:
    sys.exit("error: no coloured pixels: the plots did not render")
PY
