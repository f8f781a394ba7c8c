#!/usr/bin/env bash
# Every test of the project:
#   1. the Rust workspace: unit, golden parity, kernels vs twins and the device sampler on
#      lavapipe and burn-flex, training, bad inputs, CLI, the browser session logic;
#   2. the browser build (web/run.sh --build-only), run beside step 1: the two builds use
#      different toolchains and target dirs, and together they keep two cores busier than
#      one after the other;
#   3. the browser tests in headless Chromium, WebGPU and CPU fallback (tests/browser/run.py).
# PRIME_SKIP_BROWSER=1 runs step 1 only (for machines without Chromium or a wasm toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=1
[ "${PRIME_SKIP_BROWSER:-0}" = 1 ] && browser=0
web_log="target/web-build.log"
if [ "$browser" = 1 ]; then
  mkdir -p target
  (web/run.sh --build-only && echo "[${SECONDS} s] the browser build finished") >"$web_log" 2>&1 &
  web_pid=$!
  trap 'pkill -P "$web_pid" 2>/dev/null || true; kill "$web_pid" 2>/dev/null || true' EXIT
fi

cargo test --workspace --no-run
echo "[${SECONDS} s] the Rust workspace is built"
cargo test --workspace
echo "[${SECONDS} s] the Rust workspace's tests passed"

if [ "$browser" = 0 ]; then
  echo "PRIME_SKIP_BROWSER=1: the browser build and tests were skipped"
  exit 0
fi
echo "waiting for the browser build (log: $web_log)"
if ! wait "$web_pid"; then
  cat "$web_log"
  echo "error: the browser build failed" >&2
  exit 1
fi
trap - EXIT
tail -n 2 "$web_log"
python3 tests/browser/run.py
echo "[${SECONDS} s] the browser tests passed"
