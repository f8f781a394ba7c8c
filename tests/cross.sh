#!/usr/bin/env bash
# The other desktop platforms, from this Debian machine:
#   1. Windows: `prime` cross-built for x86_64-pc-windows-gnu (Debian's rustc-web building std
#      with -Z build-std, linked by mingw-w64), run under Wine on the CPU: `info` must list the
#      DX12 and Vulkan backends; `generate` on the built-in demo model must equal the Linux
#      binary's output, and `forward` on a golden case must match the official logits within the
#      tolerance the Linux build is held to (5e-5, tests/golden/PROVENANCE.md; the platforms' libm
#      differ in the last bits).
#   2. macOS: prime-native type-checked (`cargo check`) for aarch64-apple-darwin with the Metal
#      backend; no SDK is needed for that (a link would need Apple's SDK and linker).
# Needs: rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64 (`.ci/run` installs them)
# and the Linux binary (target/debug/prime, from `cargo test --workspace` or `cargo build`).
# PRIME_CROSS_TARGET_DIR moves the cross builds' target dir (default target/cross).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${PRIME_CROSS_TARGET_DIR:-$root/target/cross}"
linux="${PRIME_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/prime}"
for tool in /usr/bin/rustc /usr/bin/cargo x86_64-w64-mingw32-gcc /usr/lib/wine/wine64 "$linux"; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found (apt-get install rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64; cargo build -p prime-native)" >&2
    exit 1
  fi
done
# Debian's toolchain, which carries std's sources to build std for any target.
cross() {
  PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_DIR="$target_dir" CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    /usr/bin/cargo "$@" -Z build-std=std,panic_abort -p prime-native
}
seconds() { echo $(( $(date +%s) - $1 )); }

# 1. Windows.
started=$(date +%s)
cross build --release --target x86_64-pc-windows-gnu --bin prime
exe="$target_dir/x86_64-pc-windows-gnu/release/prime.exe"
echo "windows: built $(du -h "$exe" | cut -f1) prime.exe in $(seconds "$started") s"
# Rust's std on Windows draws its random numbers from ProcessPrng (bcryptprimitives.dll), which
# Wine 8 (Debian 12's) lacks: a stand-in DLL beside the exe forwards it to RtlGenRandom. Windows
# itself has the real one and needs nothing.
shim="$(dirname "$exe")/bcryptprimitives.dll"
if [ ! -f "$shim" ]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" tests/cross/process_prng.c -ladvapi32
fi
export WINEPREFIX="$target_dir/wine" WINEDEBUG=-all
wine() { /usr/lib/wine/wine64 "$exe" "$@"; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

info="$(wine info --json --device cpu)"
for api in DX12 VULKAN; do
  if ! grep -q "\"$api\"" <<<"$info"; then
    echo "error: the Windows build does not carry the $api backend: $info" >&2
    exit 1
  fi
done
adapters=$(python3 -c 'import json, sys; print(len(json.load(sys.stdin)["adapters"]))' <<<"$info")
echo "windows: prime info lists the DX12 and Vulkan backends; Wine offers $adapters adapter(s)"

request=(generate --prompt "It was" --steps 64 --seed 7 --device cpu --json)
wine "${request[@]}" >"$scratch/windows.json"
"$linux" "${request[@]}" >"$scratch/linux.json"
python3 - "$scratch/windows.json" "$scratch/linux.json" <<'EOF'
import json, sys
windows, linux = (json.load(open(path)) for path in sys.argv[1:])
for key in ("tokens", "text", "nfe", "idle_steps"):
    if windows[key] != linux[key]:
        sys.exit(f"error: the Windows binary's {key} differ from the Linux binary's:\n{windows[key]!r}\n{linux[key]!r}")
print(f"windows: generate equals Linux (64 steps, NFE {windows['nfe']}): {windows['text'][:60]!r}…")
EOF

golden=tests/golden/prime_l4_small
wine forward --model "$golden" --input "$golden/cases.safetensors" --output "$scratch/windows.safetensors" --device cpu
python3 - "$scratch/windows.safetensors" "$golden/cases.safetensors" <<'EOF'
import json, struct, sys

def logits(path):
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    entry = json.loads(data[8:8 + size])["logits"]
    begin, end = entry["data_offsets"]
    raw = data[8 + size + begin:8 + size + end]
    return struct.unpack(f"<{len(raw) // 4}f", raw)

windows, official = logits(sys.argv[1]), logits(sys.argv[2])
worst = max(abs(a - b) for a, b in zip(windows, official))
if len(windows) != len(official) or worst > 5e-5:
    sys.exit(f"error: the Windows binary's logits are {worst:.2e} from the official ones (tolerance 5e-5)")
print(f"windows: forward on {sys.argv[2]} is {worst:.1e} from the official logits (tolerance 5e-5)")
EOF

# 2. macOS.
started=$(date +%s)
cross check --target aarch64-apple-darwin --bin prime --bin prime-train
echo "macos: prime-native type-checks for aarch64-apple-darwin (Metal) in $(seconds "$started") s"
