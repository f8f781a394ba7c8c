#!/usr/bin/env python3
"""The browser's step time beside native's, for one model, in one run.

Serves the built page (web/run.sh --build-only), generates in headless Chromium through the page
(the CPU fallback by default: burn-flex in wasm, one thread) and times the steps that called the
network, as the page measures them; then runs native `prime bench` on the same model, steps and
seed count, on the same number of threads, and prints both and their ratio.

    python3 tests/browser/bench.py [--model assets/prime] [--backend cpu|webgpu] [--steps 48]
                                   [--runs 2] [--threads 1]

A benchmark, not a test: it prints figures and passes no judgement. Stop other work on the
machine first; its figures move with the machine's load.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as page  # noqa: E402  (the browser tests' server, WebDriver client and page helpers)

SLOT = "_bench"  # the folder under the served models/ the model is copied to


def browser_ms(model_dir, backend, steps, runs):
    """Mean ms per network step in the page, one figure per run."""
    slot = os.path.join(page.DIST, "models", SLOT)
    shutil.rmtree(slot, ignore_errors=True)
    os.makedirs(slot)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copy(os.path.join(model_dir, name), slot)
    server, base = page.start_server()
    driver, url = page.start_driver()
    browser = page.Browser(url)
    try:
        figures = []
        for _ in range(runs):
            page.open_page(browser, base, f"backend={backend}&models=models/{SLOT}/")
            info = page.wait_ready(browser)
            prompt = "It was" if info["model"]["tokenizer"] else ""
            page.run_generation(browser, prompt, steps, 7)
            figures.append(page.network_ms(browser))
        return figures, info["device"]
    finally:
        browser.close()
        driver.kill()
        server.shutdown()
        shutil.rmtree(slot, ignore_errors=True)


def native_ms(model_dir, steps, runs, threads):
    """Native `prime bench`'s ms per step on the host executor (every step here calls the network)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([page.PRIME, "bench", "--model", model_dir, "--steps", str(steps), "--runs", str(runs),
                          "--paths", "host", "--batch", "1", "--json", "--device", "cpu"],
                         check=True, capture_output=True, text=True, env=env, timeout=1800)
    row = json.loads(out.stdout)["rows"][0]
    return row["ms_per_step"], row["nfe"]


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--model", default=os.path.join(page.ROOT, "assets", "prime"))
    args.add_argument("--backend", default="cpu", choices=["cpu", "webgpu"])
    args.add_argument("--steps", type=int, default=48)
    args.add_argument("--runs", type=int, default=2)
    args.add_argument("--threads", type=int, default=1, help="native threads (the browser's CPU path has one)")
    a = args.parse_args()
    if not os.path.isfile(os.path.join(page.DIST, "pkg", "prime_web_bg.wasm")):
        sys.exit(f"error: {page.DIST} has no built page; run web/run.sh --build-only first")
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        sys.exit(f"error: {a.model} is not a model folder (no config.json)")
    figures, device = browser_ms(os.path.abspath(a.model), a.backend, a.steps, a.runs)
    native, nfe = native_ms(a.model, a.steps, a.runs, a.threads)
    where = "CPU fallback (burn-flex in wasm, one thread)" if device["backend"] == "flex" else "WebGPU"
    print(f"model {a.model}, T = {a.steps}, {a.runs} runs, NFE ~{nfe:.0f}")
    print(f"browser, {where}: {', '.join(f'{f:.1f}' for f in figures)} ms per network step")
    print(f"native prime bench, burn-flex on {a.threads} thread(s): {native:.1f} ms per step")
    print(f"browser / native: {min(figures) / native:.1f}x (fastest browser run)")


if __name__ == "__main__":
    main()
