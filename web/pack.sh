#!/usr/bin/env bash
# Packs the npm package prime-web from the built page (web/run.sh --build-only first): the
# wasm-bindgen output and web/pkg (API, types, package.json, README) into target/npm/prime-web,
# then `npm pack` (offline) into target/npm/. Prints the tarball's path and sizes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dist="${PRIME_WEB_DIST:-$root/target/web-dist}"
out="$root/target/npm"
for file in prime_web.js prime_web.d.ts prime_web_bg.wasm; do
  if [ ! -f "$dist/pkg/$file" ]; then
    echo "error: $dist/pkg/$file is missing; run web/run.sh --build-only first" >&2
    exit 1
  fi
done
rm -rf "$out"
mkdir -p "$out/prime-web"
cp "$dist"/pkg/prime_web.js "$dist"/pkg/prime_web.d.ts "$dist"/pkg/prime_web_bg.wasm "$out/prime-web/"
cp web/pkg/index.js web/pkg/index.d.ts web/pkg/package.json web/pkg/README.md LICENSE-MIT "$out/prime-web/"
tarball="$(cd "$out" && npm pack --offline --silent ./prime-web)"
unpacked=$(du -sb "$out/prime-web" | cut -f1)
packed=$(stat -c %s "$out/$tarball")
echo "$out/$tarball"
awk -v p="$packed" -v u="$unpacked" 'BEGIN { printf "npm package: %.2f MB packed, %.2f MB unpacked\n", p / 1e6, u / 1e6 }' >&2
