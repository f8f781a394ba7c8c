#!/usr/bin/env bash
# Builds the browser runtime and serves the page with the shipped demo models.
#
#   web/run.sh                 build, then serve on http://127.0.0.1:8080
#   web/run.sh --port 9000     another port
#   web/run.sh --build-only    build target/web-dist and stop
#
# Steps: prime-web is compiled for wasm32 (rustup's wasm32 target where it is installed,
# otherwise Debian's rustc-web toolchain building std itself), wasm-bindgen generates the JS
# glue and its types, the package API (web/pkg), the page (web/www) and the models (assets/prime, assets/mdlm and the image models
# assets/fashion-prime, assets/fashion-mdlm) are copied next to it, and
# the sizes of the wasm (raw and gzipped) are printed. The page is served by web/serve.py
# (gzipped module and scripts where the browser accepts gzip).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dist="${PRIME_WEB_DIST:-$root/target/web-dist}"
# Compiled output goes where cargo puts it: CARGO_TARGET_DIR when set, else target/.
build="${CARGO_TARGET_DIR:-$root/target}"
port=8080
serve=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) serve=0 ;;
    --port) port="$2"; shift ;;
    *) echo "usage: web/run.sh [--build-only] [--port N]" >&2; exit 2 ;;
  esac
  shift
done

# 1. The wasm module, with SIMD128 (vector instructions every current browser runs).
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "building prime-web with rustup's wasm32 target"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128" \
    cargo build --release --target wasm32-unknown-unknown -p prime-web
  wasm="$build/wasm32-unknown-unknown/release/prime_web.wasm"
elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust ] && [ -x /usr/bin/wasm-ld-22 ]; then
  echo "building prime-web with Debian's rustc-web (std built for wasm32)"
  target_dir="$build/wasm-debian"
  PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/wasm-ld-22 CARGO_TARGET_DIR="$target_dir" \
    /usr/bin/cargo build --release --target wasm32-unknown-unknown -Z build-std=std,panic_abort -p prime-web
  wasm="$target_dir/wasm32-unknown-unknown/release/prime_web.wasm"
else
  cat >&2 <<'EOF'
error: no Rust toolchain for wasm32 was found. Either
  rustup target add wasm32-unknown-unknown
or, on Debian 12 without rustup downloads,
  apt-get install rustc-web cargo-web rust-web-src lld-22
EOF
  exit 1
fi

# 2. The JS glue, from the wasm-bindgen-cli of exactly the crate's version.
need="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have" != "$need" ]; then
  echo "installing wasm-bindgen-cli $need (found: ${have:-none})"
  # Not --locked: the CLI's own lockfile pins webpki-roots 1.0.11, which the registry no
  # longer offers (seen 2026-11-25), so cargo resolves current versions.
  cargo install wasm-bindgen-cli --version "$need"
fi
rm -rf "$dist"
mkdir -p "$dist/pkg" "$dist/models"
# The name section (function names for stack traces) is half the module; panics still print
# their messages without it. (Debian 12's binaryen 108 `wasm-opt -Os` gives 20.8 MB raw but a
# larger gzip, 4.77 MB, and a module that fails to instantiate, so it is not used.)
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir "$dist/pkg" "$wasm"
# The package API (web/pkg) beside the glue: the page imports it as any user of the npm package
# does (web/pack.sh packs the same files).
cp web/pkg/index.js web/pkg/index.d.ts "$dist/pkg/"

# 3. The page and the models.
cp web/www/*.html web/www/*.js web/www/*.css "$dist/"
for model in prime mdlm fashion-prime fashion-mdlm; do
  mkdir -p "$dist/models/$model"
  # Image models have no tokenizer; training.json says how the model was trained.
  for file in config.json model.safetensors tokenizer.json training.json; do
    if [ -f "assets/$model/$file" ]; then cp "assets/$model/$file" "$dist/models/$model/"; fi
  done
done
# `kind` groups the models behind the page's text / image switch (text first: the default).
cat > "$dist/models.json" <<'EOF'
[
  { "name": "MDM-Prime (ℓ = 2)", "path": "models/prime/", "kind": "text" },
  { "name": "MDLM (ℓ = 1)", "path": "models/mdlm/", "kind": "text" },
  { "name": "MDM-Prime (ℓ = 2, b = 16) · Fashion-MNIST 14 × 14", "path": "models/fashion-prime/", "kind": "image" },
  { "name": "MDLM (ℓ = 1) · Fashion-MNIST 14 × 14", "path": "models/fashion-mdlm/", "kind": "image" }
]
EOF

# 4. Gzipped copies of the module and the scripts, which web/serve.py sends to browsers that
# accept gzip; and the sizes.
gzip -9 -k -f "$dist"/pkg/*.wasm "$dist"/pkg/*.js "$dist"/*.js
raw=$(stat -c %s "$dist/pkg/prime_web_bg.wasm")
gz=$(stat -c %s "$dist/pkg/prime_web_bg.wasm.gz")
awk -v r="$raw" -v g="$gz" 'BEGIN { printf "prime_web_bg.wasm: %.2f MB raw, %.2f MB gzipped\n", r / 1e6, g / 1e6 }'

if [ "$serve" = 1 ]; then
  exec python3 "$root/web/serve.py" "$dist" --port "$port"
fi
