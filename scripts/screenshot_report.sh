#!/usr/bin/env bash
# Render an mlffbench HTML report in headless Chromium and save a screenshot (what a reader sees).
#
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
#
# Needs Debian's `chromium` package (apt-get install -y chromium) or CHROMIUM=/path/to/chrome.
# Exit 2 on bad input or a missing browser, 1 if Chromium wrote no screenshot.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2; exit 2
fi
report=$1 out=$2 size=${3:-1280,2000}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -f $report ]] || { echo "error: $report: no such file" >&2; exit 2; }
[[ -n $chromium && -x $chromium ]] || { echo "error: chromium not found (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
rm -f "$out"
# the flags keep a headless run offline and quiet: no GPU, no sandbox (containers), no background fetches
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$size" --screenshot="$(realpath -m "$out")" \
  "file://$(realpath "$report")" >/dev/null 2>&1 || true
[[ -s $out ]] || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "screenshot written to $out"
