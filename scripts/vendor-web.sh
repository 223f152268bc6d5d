#!/usr/bin/env bash
# Refresh the web page's vendored assets from their npm packages (`make vendor`).
# Pinned versions; `npm pack` checks each tarball against the registry's integrity hash,
# which is recorded beside the files (VENDOR.txt). Nothing is fetched at run or test time:
# the files are committed, so the page works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=htmx.org@2.0.11
PICO=@picocss/pico@2.1.1
AXE=axe-core@4.14.1
STATIC=platform/web/static/vendor
AXE_DIR=tests/web/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$STATIC/htmx" "$STATIC/pico" "$AXE_DIR"
pack() {  # pack NAME@VERSION -> prints "<tarball> <integrity>"
  (cd "$tmp" && npm pack --silent --json "$1" | python3 -c \
    'import json,sys; d=json.load(sys.stdin)[0]; print(d["filename"], d["integrity"])')
}
read -r f i < <(pack "$HTMX"); tar xzf "$tmp/$f" -C "$tmp" && mv "$tmp/package" "$tmp/htmx"
cp "$tmp/htmx/dist/htmx.min.js" "$tmp/htmx/LICENSE" "$STATIC/htmx/"; echo "$HTMX $i" > "$tmp/lines"
read -r f i < <(pack "$PICO"); tar xzf "$tmp/$f" -C "$tmp" && mv "$tmp/package" "$tmp/pico"
cp "$tmp/pico/css/pico.min.css" "$tmp/pico/LICENSE.md" "$STATIC/pico/"; echo "$PICO $i" >> "$tmp/lines"
read -r f i < <(pack "$AXE"); tar xzf "$tmp/$f" -C "$tmp" && mv "$tmp/package" "$tmp/axe"
cp "$tmp/axe/axe.min.js" "$tmp/axe/LICENSE" "$tmp/axe/LICENSE-3RD-PARTY.txt" "$AXE_DIR/"
{ echo "# written by scripts/vendor-web.sh: package@version and the npm integrity of its tarball"
  cat "$tmp/lines"; } > "$STATIC/VENDOR.txt"
{ echo "# written by scripts/vendor-web.sh: package@version and the npm integrity of its tarball"
  echo "$AXE $i"; } > "$AXE_DIR/VENDOR.txt"
echo "vendored: $HTMX $PICO (platform/web/static/vendor) $AXE (tests/web/vendor)"
