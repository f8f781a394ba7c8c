#!/usr/bin/env python3
"""Browser tests: the built page (target/web-dist, from `web/run.sh --build-only`) in headless
Chromium with real WebGPU (SwiftShader, `--enable-unsafe-webgpu`) and with the CPU fallback,
driven over W3C WebDriver by chromedriver. Standard library only.

Checks: golden parity of the official logits inside the browser (WebGPU and CPU); the
sub-token shaders against their twins on the browser's WebGPU; the browser's CPU tokens
equal native `prime generate --device cpu`; on WebGPU the device executor (WGSL kernels, no
logits read back) gives the host executor's tokens, with the bytes read back per step printed
for both; a trajectory written by native `prime generate --trajectory` opens in the page and
replays; an end-to-end drive of the page (partial states shown, timeline scrubbed, trajectory
export equal to the page, screenshots saved to target/browser-artifacts/); the page watching a
native `prime serve` run live, record for record what the CLI writes; readable messages
for a missing WebGPU, a 404, truncated downloads and a bad config; the npm package installed
from its tarball into a plain page (WebGPU and CPU), its types checked with tsc; a model name from the URL
shown as text, never parsed as markup; a model folder opened from local files generates the
native tokens; the image mode (Fashion-MNIST models side by side, a partly revealed pixel drawn
at its coarse level with a marker, its tooltip) and inpainting (pinned pixels kept exactly).
"""

import base64
import functools
import gzip
import random
import struct
import http.server
import json
import re
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIST = os.environ.get("PRIME_WEB_DIST", os.path.join(ROOT, "target", "web-dist"))
ARTIFACTS = os.path.join(ROOT, "target", "browser-artifacts")
# The native binary from `cargo test --workspace`, in cargo's target dir.
BUILD = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
PRIME = os.environ.get("PRIME_BIN", os.path.join(BUILD, "debug", "prime"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
GOLDEN_TOL = 5e-5
GOLDEN_CASES = ["prime_l2_tiny", "prime_l4_small", "mdlm_l1_tiny"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The test server: the built page, the golden folders, and broken model folders.

PRIME_CONFIG = os.path.join(ROOT, "assets", "prime", "config.json")
PRIME_WEIGHTS = os.path.join(ROOT, "assets", "prime", "model.safetensors")


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_bytes(self, body, length=None, kind="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def broken(self, folder, name):
        """Model folders that go wrong in the ways the page must explain."""
        if name == "config.json" and folder in ("truncated", "short", "missing-weights", "too-large"):
            return self.send_bytes(open(PRIME_CONFIG, "rb").read(), kind="application/json")
        if name == "config.json" and folder == "bad-config":
            return self.send_bytes(b'{"model_class": "PerceiverDIT", "vocab_size": "many"}', kind="application/json")
        if name == "model.safetensors" and folder == "truncated":
            data = open(PRIME_WEIGHTS, "rb").read()
            # Announce the whole file, send half, hang up: the connection breaks mid-download.
            self.send_bytes(data[: len(data) // 2], length=len(data))
            self.close_connection = True
            return None
        if name == "model.safetensors" and folder == "too-large":
            # Announces 1 PB: more than the tab can hold, found before any byte is kept.
            self.send_bytes(b"\0" * 1024, length=2**50)
            self.close_connection = True
            return None
        if name == "model.safetensors" and folder == "short":
            data = open(PRIME_WEIGHTS, "rb").read()
            return self.send_bytes(data[: len(data) // 3])
        self.send_error(404)
        return None

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["models", "gpt2-f16"]:
            local = os.path.join(gpt2_f16_model(), parts[2])
            if os.path.isfile(local):
                return self.send_bytes(open(local, "rb").read())
            return self.send_error(404)
        if len(parts) == 3 and parts[0] == "broken":
            return self.broken(parts[1], parts[2])
        if path == "/api-check.html":
            return self.send_bytes(open(os.path.join(ROOT, "tests", "browser", "api.html"), "rb").read(),
                                   kind="text/html")
        if parts[0] == "golden":
            local = os.path.join(ROOT, "tests", *parts)
            if os.path.isfile(local):
                return self.send_bytes(open(local, "rb").read())
            return self.send_error(404)
        return super().do_GET()


@functools.cache
def gpt2_f16_model():
    """A model folder of the official kind at a small size (ℓ = 2, V = 4096, L = 128, hidden 64,
    2 blocks, 1 head), stored as f16 as the page is meant to download a large model, with
    random values in every tensor (`prime init` zeroes the output layer, as the official init
    does, which would make every output the same)."""
    out = tempfile.mkdtemp(prefix="prime-gpt2-f16-")
    subprocess.run([PRIME, "init", "--preset", "owt-l2", "--dtype", "f16", "--vocab", "4096", "--length", "128", "--hidden", "64",
                    "--blocks", "2", "--heads", "1", "--out", out], check=True, capture_output=True, timeout=600)
    path = os.path.join(out, "model.safetensors")
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    rng = random.Random(4)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F16", info
        start, stop = info["data_offsets"]
        count = (stop - start) // 2
        body[start:stop] = struct.pack(f"<{count}e", *(rng.gauss(0.0, 0.1) for _ in range(count)))
    with open(path, "wb") as f:
        f.write(data[:8 + n] + bytes(body))
    return out


def start_driver():
    """Starts ChromeDriver on a free port and waits until it answers: (process, its URL)."""
    port = free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/status", timeout=2)
            break
        except Exception:
            time.sleep(0.1)
    return driver, url


def start_server():
    port = free_port()
    handler = functools.partial(Handler, directory=DIST)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------------------------
# A minimal W3C WebDriver client.


class Browser:
    def __init__(self, driver_url, webgpu=True):
        self.driver = driver_url
        profile = tempfile.mkdtemp(prefix="prime-chromium-")
        args = [
            "--headless", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1400,1100", f"--user-data-dir={profile}",
        ]
        if webgpu:
            args.append("--enable-unsafe-webgpu")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]
        self.call("POST", f"/session/{self.session}/timeouts", {"script": 600_000})

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.driver + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode(errors='replace')[:2000]}") from None

    def get(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)})

    def wait(self, expression, timeout=600, what=None):
        """Polls a JS expression until it is truthy; returns its value."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(f"return ({expression});")
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what or expression}; status: {self.js('return document.getElementById(`status`)?.textContent')}")

    def screenshot(self, name, selector=None):
        """Saves the viewport, or only the element `selector` matches, as ARTIFACTS/name."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = f"/session/{self.session}/screenshot"
        if selector:
            found = self.call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": selector})
            path = f"/session/{self.session}/element/{next(iter(found.values()))}/screenshot"
        png = base64.b64decode(self.call("GET", path))
        path = os.path.join(ARTIFACTS, name)
        with open(path, "wb") as f:
            f.write(png)
        return path

    def console_errors(self):
        try:
            logs = self.call("POST", f"/session/{self.session}/se/log", {"type": "browser"})
        except RuntimeError:
            return []
        return [l["message"] for l in logs if l.get("level") == "SEVERE"]

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except Exception:
            pass


# --------------------------------------------------------------------------------------------
# Page helpers.

PANEL = "window.prime.panels[{i}]"


def open_page(browser, base, query):
    browser.get(base + "index.html?" + query)
    browser.wait("window.prime && window.prime.panels.length > 0", 60, "the page to start")


def wait_ready(browser, i=0, timeout=600):
    p = PANEL.format(i=i)
    phase = browser.wait(f"{p}.phase !== 'loading' && {p}.phase", timeout, f"panel {i} to load")
    error = browser.js(f"return {p}.el.querySelector('.error').hidden ? null : {p}.el.querySelector('.error').textContent")
    assert phase == "ready", f"panel {i} did not load: {phase}: {error}"
    return browser.js(f"return {p}.info")


def run_generation(browser, prompt, steps, seed, n_panels=1, timeout=900, executor="auto"):
    browser.js(
        """
        const [prompt, steps, seed, executor] = arguments;
        document.getElementById('prompt').value = prompt;
        document.getElementById('suffix').value = '';
        document.getElementById('steps').value = steps;
        document.getElementById('seed').value = seed;
        document.getElementById('executor').value = executor;
        document.getElementById('start').click();
        """,
        prompt, steps, seed, executor,
    )
    for i in range(n_panels):
        p = PANEL.format(i=i)
        browser.wait(f"{p}.phase === 'done' || !{p}.el.querySelector('.error').hidden", timeout, f"panel {i} to finish")
        error = browser.js(f"return {p}.el.querySelector('.error').hidden ? null : {p}.el.querySelector('.error').textContent")
        assert error is None, f"generation failed in panel {i}: {error}"


def network_ms(browser, i=0):
    """Mean wall time of the steps that called the network, as the page measured them."""
    return browser.js(f"""const s = {PANEL.format(i=i)}.steps.filter(v => v.network_called);
        return s.reduce((a, v) => a + v.ms, 0) / s.length;""")


def final_tokens(browser, i=0):
    return browser.js(f"const s = {PANEL.format(i=i)}.steps; return s[s.length - 1].ending.outcome.tokens;")


def pause_and_step(browser, p):
    """Pauses the running panel `p` (a JS expression), then takes a single step."""
    browser.js("document.getElementById('pause').click();")
    browser.wait(f"{p}.phase === 'paused'", 60, "the pause")
    before = browser.js(f"return {p}.steps.length")
    browser.js("document.getElementById('step').click();")
    browser.wait(f"{p}.steps.length === {before + 1} && {p}.phase === 'paused'", 60, "one more step")


def read_bytes_per_step(browser, i=0):
    """Mean bytes read back from the device per step, as the run reported them."""
    return browser.js(f"""const s = {PANEL.format(i=i)}.steps;
        return s.reduce((a, v) => a + v.read_bytes, 0) / s.length;""")


def executor(browser, i=0):
    return browser.js(f"return {PANEL.format(i=i)}.header.executor")


def native_tokens(prompt, steps, seed, device, model="prime", extra=()):
    cmd = [PRIME, "generate", "--json", "--prompt", prompt, "--steps", str(steps), "--seed", str(seed),
           "--device", device, "--model", os.path.join(ROOT, "assets", model), *extra]
    if device == "gpu":
        cmd += ["--require-gpu", "--executor", "host"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout)["tokens"]


# --------------------------------------------------------------------------------------------
# The tests.

RESULTS = []


def test(fn):
    def run(*args):
        started = time.time()
        try:
            fn(*args)
            RESULTS.append((fn.__name__, True, ""))
            print(f"ok    {fn.__name__} ({time.time() - started:.0f} s)", flush=True)
        except Exception as e:  # a failing check is reported, the others still run
            RESULTS.append((fn.__name__, False, str(e)))
            print(f"FAIL  {fn.__name__}: {e}", flush=True)
    run.__name__ = fn.__name__
    return run


@test
def golden_parity(browser, base, backend):
    for case in GOLDEN_CASES:
        open_page(browser, base, f"backend={backend}&models=golden/{case}/")
        info = wait_ready(browser)
        expected = "wgpu" if backend == "webgpu" else "flex"
        assert info["device"]["backend"] == expected, f"{case}: ran on {info['device']['backend']}, not {expected}"
        p = PANEL.format(i=0)
        browser.js(f"{p}.golden = undefined; {p}.worker.postMessage({{type: 'golden', url: 'golden/{case}/cases.safetensors'}});")
        d = browser.wait(f"{p}.golden !== undefined ? String({p}.golden) : null", 600, f"{case} parity")
        d = float(d)
        print(f"      {case} on {expected} in the browser: max |Δ logits| = {d:.2e}", flush=True)
        assert d <= GOLDEN_TOL, f"{case} on {expected}: logits differ by {d:.2e}"


@test
def shaders_equal_twins(browser, base):
    open_page(browser, base, "backend=webgpu&models=golden/prime_l2_tiny/")
    info = wait_ready(browser)
    assert info["device"]["backend"] == "wgpu", "no WebGPU in the browser"
    p = PANEL.format(i=0)
    browser.js(f"{p}.kernels = undefined; {p}.worker.postMessage({{type: 'kernels'}});")
    report = browser.wait(f"{p}.kernels !== undefined ? {p}.kernels : "
                          f"(!{p}.el.querySelector('.error').hidden ? 'error' : null)", 600, "kernel check")
    if report == "error":
        raise AssertionError(f"the kernel check failed: {browser.js(f'return {p}.el.querySelector(`.error`).textContent')}")
    for line in report["checks"]:
        print(f"      {line['kernel']:>10} ({line['case']}): {line['detail']}", flush=True)
    bad = [c for c in report["checks"] if not c["equal"]]
    assert report["checks"] and not bad, f"shader and twin differ: {bad}"


@test
def cpu_fallback_equals_native(browser, base):
    prompt, steps, seed = "It was", 48, 7
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    run_generation(browser, prompt, steps, seed)
    got = final_tokens(browser)
    assert executor(browser) == "host", f"the CPU fallback ran the {executor(browser)} executor"
    print(f"      browser CPU (burn-flex in wasm, host executor): {network_ms(browser):.0f} ms per network step, "
          f"{read_bytes_per_step(browser):.0f} bytes read back per step", flush=True)
    want = native_tokens(prompt, steps, seed, "cpu")
    assert got == want, f"browser CPU tokens differ from native:\n{got}\n{want}"
    # Both left top-p to the model: the header records its recommendation, the empty box shows it.
    with open(os.path.join(ROOT, "assets", "prime", "config.json")) as f:
        recommended = json.load(f).get("sampling", {})
    assert "top_p" in recommended, "the text demo's config.json recommends no top-p"
    header = browser.js(f"return {PANEL.format(i=0)}.header;")
    assert abs(header["request"]["settings"]["top_p"] - recommended["top_p"]) < 1e-6, header["request"]
    shown = browser.js("return document.getElementById('top_p').placeholder;")
    assert shown == str(recommended["top_p"]), f"the top-p box shows {shown!r}"


@test
def adaptive_policy_equals_native(browser, base):
    """The page's "Reveal" control runs an adaptive policy: in the CPU fallback the tokens
    equal native `prime generate --policy confidence:0.8`, the run
    ends within T calls, and the tooltip of a token revealed at the shown step gives the
    confidence that chose it."""
    prompt, steps, seed = "It was", 24, 3
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    browser.js("document.getElementById('policy').value = 'confidence';"
               "document.getElementById('policy_value').value = '0.8';")
    run_generation(browser, prompt, steps, seed)
    p = PANEL.format(i=0)
    assert executor(browser) == "host", f"an adaptive policy ran the {executor(browser)} executor"
    header = browser.js(f"return {p}.header.request.settings;")
    assert header["policy"] == {"confidence": {"threshold": 0.8}}, header
    got = final_tokens(browser)
    want = native_tokens(prompt, steps, seed, "cpu", extra=("--policy", "confidence:0.8"))
    assert got == want, f"page and native differ under confidence:0.8:\n{got}\n{want}"
    nfe = browser.js(f"const s = {p}.steps; return s[s.length - 1].nfe;")
    assert nfe <= steps, f"NFE {nfe} above T = {steps}"
    # Show a step and hover a token it revealed.
    shown = browser.js(f"""const i = {p}.steps.findIndex(v => !v.is_final && v.scores && v.scores.length);
        window.prime.show(i);
        const v = {p}.viewAt(i);
        return {{step: i, position: Math.floor(v.revealed[0] / {p}.info.model.subtokens), score: v.scores[0]}};""")
    tip = browser.js(
        f"""const p = {p}, r = p.grid.rectOf(arguments[0]);
        p.grid.canvas.dispatchEvent(new MouseEvent('mousemove',
          {{bubbles: true, clientX: (r.left + r.right) / 2, clientY: (r.top + r.bottom) / 2}}));
        return document.getElementById('tooltip').textContent;""", shown["position"])
    print(f"      step {shown['step']}, position {shown['position']}: {tip.splitlines()[-1]}", flush=True)
    assert "revealed at this step" in tip and "confidence" in tip, f"tooltip: {tip!r}"
    browser.js(f"{p}.el.closest('#panels').dispatchEvent(new MouseEvent('mouseleave'));")
    browser.js("window.prime.show(null); document.getElementById('policy').value = 'schedule';")


@test
def webgpu_device_executor_equals_host_executor(browser, base):
    """On WebGPU the page samples through the device executor (the WGSL kernels, no logits read
    back); its tokens equal the host executor's on the same WebGPU logits and seed, under the
    schedule and under an adaptive policy."""
    prompt, steps, seed = "It was", 12, 7
    open_page(browser, base, "backend=webgpu&models=models/prime/")
    info = wait_ready(browser)
    assert info["device"]["backend"] == "wgpu", "no WebGPU in the browser"
    # At the model's recommended top-p: the cutoff kernel truncates on the device.
    run_generation(browser, prompt, steps, seed)
    assert executor(browser) == "shader", f"WebGPU ran the {executor(browser)} executor"
    device_tokens, device_bytes = final_tokens(browser), read_bytes_per_step(browser)
    device_ms = network_ms(browser)
    run_generation(browser, prompt, steps, seed, executor="host")
    assert executor(browser) == "host"
    host_tokens, host_bytes = final_tokens(browser), read_bytes_per_step(browser)
    print(f"      WebGPU, device executor: {device_bytes:.0f} bytes read back per step, {device_ms:.0f} ms per network step",
          flush=True)
    print(f"      WebGPU, host executor (as before): {host_bytes:.0f} bytes read back per step, "
          f"{network_ms(browser):.0f} ms per network step", flush=True)
    same = sum(a == b for a, b in zip(device_tokens, host_tokens))
    print(f"      device vs host executor: {same}/{len(host_tokens)} tokens equal", flush=True)
    assert device_tokens == host_tokens, "the device executor's tokens differ from the host executor's"
    assert device_bytes * 50 < host_bytes, f"device executor reads {device_bytes:.0f} B/step vs host {host_bytes:.0f}"
    # An adaptive policy runs on the device too: the scores kernel's 2·ℓ·L numbers are read
    # back, not the logits, and the choice and the tokens are the host executor's.
    browser.js("document.getElementById('policy').value = 'confidence';"
               "document.getElementById('policy_value').value = '0.8';")
    # T = 4 keeps it short (4 calls each on a software WebGPU adapter).
    run_generation(browser, prompt, 4, seed)
    assert executor(browser) == "shader", f"an adaptive policy on WebGPU ran the {executor(browser)} executor"
    adaptive_tokens, adaptive_bytes = final_tokens(browser), read_bytes_per_step(browser)
    run_generation(browser, prompt, 4, seed, executor="host")
    adaptive_host_bytes = read_bytes_per_step(browser)
    print(f"      WebGPU, confidence:0.8: device executor {adaptive_bytes:.0f} bytes read back per step, "
          f"host executor {adaptive_host_bytes:.0f}", flush=True)
    assert final_tokens(browser) == adaptive_tokens, "under confidence:0.8 the device executor's tokens differ"
    assert adaptive_bytes * 50 < adaptive_host_bytes, f"{adaptive_bytes:.0f} vs {adaptive_host_bytes:.0f} B/step"
    browser.js("document.getElementById('policy').value = 'schedule';")
    try:
        want = native_tokens(prompt, steps, seed, "gpu")
    except subprocess.CalledProcessError as e:
        raise AssertionError(f"native wgpu run failed: {e.stderr.strip()}") from None
    same = sum(a == b for a, b in zip(host_tokens, want))
    print(f"      browser WebGPU vs native wgpu (host executors): {same}/{len(want)} tokens equal", flush=True)
    # Both draw from the same counter-based stream; logits differ between the two WebGPU
    # implementations by ~1e-6 (golden parity), so a draw flips only when a uniform falls within
    # that distance of a category boundary: about one in 10^5 draws. The tokens must be equal.
    assert host_tokens == want, f"browser WebGPU and native wgpu disagree on {len(want) - same} of {len(want)} tokens"


@test
def opens_a_local_model_folder(browser, base):
    """The page opens a model folder from local files (as `prime convert` writes it) without a
    server, and generates with it: the tokens equal native `prime generate` on that folder."""
    prompt, steps, seed = "It was", 8, 3
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    browser.js("""const names = ['config.json', 'model.safetensors', 'tokenizer.json'];
        window.localFiles = null;
        Promise.all(names.map((n) => fetch('models/prime/' + n).then((r) => r.blob())))
          .then((blobs) => { window.localFiles = blobs.map((b, i) => new File([b], names[i])); });""")
    browser.wait("window.localFiles", 60, "the model files")
    browser.js("window.prime.openModel(window.localFiles.slice(0, 1));")
    status = browser.js("return document.getElementById('status').textContent")
    assert "missing: model.safetensors" in status, status
    browser.js("window.prime.openModel(window.localFiles);")
    info = wait_ready(browser)
    name = browser.js(f"return {PANEL.format(i=0)}.el.querySelector('h2').textContent")
    assert name == "local model (local)" and info["model"]["vocab_size"] == 4096, (name, info["model"])
    run_generation(browser, prompt, steps, seed)
    got, want = final_tokens(browser), native_tokens(prompt, steps, seed, "cpu")
    print(f"      local folder: {sum(a == b for a, b in zip(got, want))}/{len(want)} tokens equal native", flush=True)
    assert got == want, "the locally opened model's tokens differ from native"


@test
def f16_model_cut_into_blocks(browser, base):
    """The path of an official-size model at a size CI affords: a GPT-2-vocabulary model stored
    as f16 is downloaded, expanded to f32 by the `unpack` shader on WebGPU, and cut to a small
    binding limit (?binding=) so that its output head and its logits are in blocks, as an
    official-size model's are under 128 MiB. (V = 50257, the official vocabulary, leaves one
    201 KB logits row per block under a limit that the weights fit: 256 blocks, ~250 s per step
    on SwiftShader.) Its tokens on the device executor equal native
    `prime generate` (lavapipe, device executor, no blocks) on the same folder."""
    steps, seed, limit = 8, 5, 288 * 1024
    open_page(browser, base, f"backend=webgpu&models=models/gpt2-f16/&binding={limit}")
    info = wait_ready(browser)
    assert info["device"]["backend"] == "wgpu", "no WebGPU in the browser"
    blocking = info["blocking"]
    assert blocking["limit"] == limit and blocking["head_blocks"] > 1 and blocking["logits_blocks"] > 1, blocking
    p = PANEL.format(i=0)
    line = browser.js(f"return {p}.el.querySelector('.device').textContent")
    assert "output head in" in line, line
    run_generation(browser, "", steps, seed)
    assert executor(browser) == "shader", f"WebGPU ran the {executor(browser)} executor"
    got = final_tokens(browser)
    cmd = [PRIME, "generate", "--json", "--steps", str(steps), "--seed", str(seed),
           "--model", gpt2_f16_model(), "--device", "gpu", "--require-gpu", "--executor", "shader"]
    want = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900).stdout)["tokens"]
    same = sum(a == b for a, b in zip(got, want))
    print(f"      f16 weights, head in {blocking['head_blocks']} blocks, logits in "
          f"{blocking['logits_blocks']} row blocks: {same}/{len(want)} tokens equal native lavapipe "
          f"({len(set(want))} distinct)", flush=True)
    assert got == want, "the f16 model cut into blocks gives other tokens than native"


def synthetic_trajectory(length, subtokens, base, steps, seed=1):
    """A `prime-trajectory` of official shape (no model needed): each step reveals a random
    share of the remaining digits; guesses, labels and candidates as a recorded run has them."""
    import random
    rng = random.Random(seed)
    vocab = min(base ** subtokens, 50257)
    n = length * subtokens
    final = [rng.randrange(vocab) for _ in range(length)]
    digits = [(t // base ** (subtokens - 1 - j)) % base for t in final for j in range(subtokens)]
    state = [base] * n
    order = list(range(n))
    rng.shuffle(order)
    header = {"format": "prime-trajectory", "version": 1,
              "model": {"model_class": "PerceiverDIT", "vocab_size": vocab, "subtokens": subtokens, "base": base,
                        "mask_id": base, "length": length, "parameters": 0, "tokenizer": False},
              "request": {"prompt": [], "suffix": [], "pins": [], "settings": {"steps": steps, "seed": seed},
                          "executor": "host", "sync_states": False},
              "executor": "host", "device": "synthetic", "fixed": [False] * length}
    lines, labelled = [header], set()
    for k in range(steps + 1):
        share = order[k * n // (steps + 1):(k + 1) * n // (steps + 1)] if k < steps else order[k * n // (steps + 1):]
        for slot in share:
            state[slot] = digits[slot]
        guesses = [final[i] if rng.random() < 0.5 else rng.randrange(vocab) for i in range(length)]
        partly = [i for i in range(length) if 0 < sum(state[i * subtokens + j] != base for j in range(subtokens)) < subtokens]
        candidates = [{"position": i, "count": rng.randrange(1, 200),
                       "top": [[rng.randrange(vocab), 0.1] for _ in range(5)]} for i in partly]
        new = sorted(set(guesses) - labelled)
        labelled |= set(new)
        lines.append({"step": k, "steps": steps, "t": 1 - k / steps, "is_final": k == steps, "state": list(state),
                      "revealed": sorted(share), "guesses": guesses, "candidates": candidates, "idle": False,
                      "network_called": True, "nfe": k + 1, "idle_steps": 0,
                      "labels": [[t, f"tok{t}"] for t in new], "read_bytes": 0})
    lines.append({"outcome": {"tokens": final, "steps": steps, "nfe": steps + 1, "idle_steps": 0,
                              "masked_at_start": n}, "text": None})
    return "\n".join(json.dumps(line) for line in lines)


@test
def draws_official_size_steps(browser, base):
    """The page draws a step of an official-size sequence (L = 1024, ℓ = 4: 4096 digit slots):
    the time to render each step is printed (a figure for the README, not a pass mark)."""
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    steps = 12
    browser.js("window.prime.open(new File([arguments[0]], 'official-size.jsonl'));",
               synthetic_trajectory(1024, 4, 15, steps))
    p = PANEL.format(i=0)
    browser.wait(f"{p}.spec.trajectory && {p}.phase === 'ready' || {p}.steps.length > 0", 60, "the replay")
    browser.js("document.getElementById('speed').value = 0;")
    browser.wait(f"{p}.phase === 'done'", 120, "the replay to finish")
    times = browser.js(f"""const out = [];
        for (let i = 0; i <= {steps}; i += 1) {{
          const t0 = performance.now();
          window.prime.show(i);
          document.body.offsetHeight; // layout included
          {p}.grid.canvas.getContext('2d').getImageData(0, 0, 1, 1); // and the canvas painted
          out.push(performance.now() - t0);
        }}
        return [out, {p}.grid.cells.length];""")
    ms, cells = times
    # Once the replay is idle, the rows far below the viewport are painted too (a full-page
    # capture shows every cell): the last cell's box is not the background.
    corner = f"""const p = {p}, g = p.grid, [x, y] = g.origin(g.cells.length - 1), dpr = g.geometry.dpr;
        const d = g.canvas.getContext('2d').getImageData(Math.round((x + 1.5) * dpr), Math.round((y + 1.5) * dpr), 1, 1).data;
        return [d[0], d[1], d[2], g.canvas.getBoundingClientRect().top + y > window.innerHeight];"""
    browser.wait(f"(() => {{ {corner} }})()[0] !== 255", 10, "the rows below the viewport to be painted")
    last = browser.js(corner)
    assert last[3], f"the last cell is not below the viewport: {last}"
    browser.screenshot("page-official-size.png")
    print(f"      L = 1024, ℓ = 4: {cells} cells; draw one step: mean {sum(ms) / len(ms):.1f} ms, "
          f"max {max(ms):.1f} ms (headless Chromium, 2-core machine)", flush=True)
    assert cells == 1024, f"{cells} cells drawn"


@test
def untrusted_names_are_text(browser, base):
    """A model name from the ?models= query lands in the page as text: a URL cannot inject markup."""
    name = '<img src=x onerror="window.pwned=1">'
    open_page(browser, base, "models=" + urllib.parse.quote(f"broken/{name}/"))
    p = PANEL.format(i=0)
    browser.wait(f"!{p}.el.querySelector('.error').hidden", 120, "the error of a missing model")
    got = browser.js(f"""return [{p}.el.querySelector('h2').textContent,
        document.querySelectorAll('#panels img').length, window.pwned ?? null]""")
    print(f"      heading {got[0]!r}, injected elements {got[1]}, script ran: {got[2] is not None}", flush=True)
    assert got == [name, 0, None], f"the name was parsed as markup: {got}"


def native_image_trajectory():
    """Native `prime generate --trajectory` with the Fashion-MNIST MDM-Prime model: (path, records)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "image.jsonl")
    subprocess.run([PRIME, "generate", "--steps", "16", "--seed", "2", "--device", "cpu", "--model",
                    os.path.join(ROOT, "assets", "fashion-prime"), "--trajectory", path,
                    "--png", os.path.join(ARTIFACTS, "image.png")],
                   check=True, capture_output=True, text=True, timeout=600)
    return path, [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def native_trajectory(name, steps, seed):
    """Native `prime generate --trajectory` with the demo model and the prompt "It was", written
    to ARTIFACTS/name: (its path, its records)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    subprocess.run([PRIME, "generate", "--prompt", "It was", "--steps", str(steps), "--seed", str(seed), "--device",
                    "cpu", "--model", os.path.join(ROOT, "assets", "prime"), "--trajectory", path],
                   check=True, capture_output=True, text=True, timeout=600)
    return path, [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


@test
def replays_a_native_trajectory(browser, base):
    """A trajectory written by native `prime generate --trajectory` opens in the page and replays
    with the same controls."""
    path, lines = native_trajectory("native.jsonl", 24, 5)
    header, ending = lines[0], lines[-1]
    assert header["format"] == "prime-trajectory" and len(lines) == 24 + 3, f"{len(lines)} lines"
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    browser.js("""document.getElementById('speed').value = 300;
        window.prime.open(new File([arguments[0]], 'native.jsonl'));""", open(path, encoding="utf-8").read())
    p = PANEL.format(i=0)
    browser.wait(f"window.prime.panels.length === 1 && {p}.spec.trajectory && {p}.steps.length >= 3", 60, "the replay")
    pause_and_step(browser, p)
    browser.js("document.getElementById('speed').value = 0; document.getElementById('pause').click();")
    browser.wait(f"{p}.phase === 'done'", 60, "the replay to finish")
    shown = browser.js(f"return {p}.grid.cells.map(c => c.token);")
    assert shown == ending["outcome"]["tokens"], "the replay's final cells differ from the file"
    text = browser.js(f"return {p}.el.querySelector('.final-text').textContent")
    assert text == ending["text"], f"{text[:60]!r}"
    l = header["model"]["subtokens"]
    partial = browser.js(f"return {p}.steps.findIndex(v => {p}.cells(v).some(c => c.known > 0 && c.known < {l}))")
    assert partial >= 0, "the replay shows no partly revealed token"
    browser.js("window.prime.show(arguments[0])", partial)
    browser.screenshot("page-replay.png")
    # The replay exports the same trajectory back.
    browser.js("document.getElementById('export').click();")
    exported = browser.wait("window.primeExport", 30, "the export")
    again = [json.loads(line) for line in list(exported.values())[0].splitlines() if line.strip()]
    assert again == lines, "re-exported trajectory differs from the opened file"
    # A file whose records do not fit its header is refused with a message, and the replay stays.
    broken = [dict(line) for line in lines]
    broken[3]["state"] = broken[3]["state"][:-1]
    browser.js("window.prime.open(new File([arguments[0]], 'broken.jsonl'));",
               "\n".join(json.dumps(line) for line in broken))
    status = browser.wait("document.getElementById('status').className === 'bad' && "
                          "document.getElementById('status').textContent", 30, "the error of a broken file")
    print(f"      broken trajectory: {status}", flush=True)
    assert status.startswith("broken.jsonl: ") and "trajectory line 4: the record does not fit" in status, status
    assert browser.js("return window.prime.panels.length") == 1, "the open replay was lost"


def start_prime_serve(model, *extra):
    """Starts `prime serve` with a shipped model on a free port: (process, its URL)."""
    proc = subprocess.Popen([PRIME, "serve", "--model", os.path.join(ROOT, "assets", model), "--device", "cpu",
                             "--port", "0", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
            return proc, found.group(1)
    proc.wait()
    raise AssertionError(f"prime serve did not start (exit {proc.returncode})")


@test
def watches_a_prime_serve_run(browser, base):
    """The page watches a native `prime serve` run live (?server=URL): the streamed steps are the
    ones `prime generate --trajectory` writes; a refused request and a server that is down are
    explained in the panel."""
    _, lines = native_trajectory("served.jsonl", 40, 5)
    proc, url = start_prime_serve("prime", "--max-steps", "512")
    try:
        open_page(browser, base, "server=" + urllib.parse.quote(url, safe=""))
        wait_ready(browser)
        p = PANEL.format(i=0)
        device = browser.js(f"return {p}.el.querySelector('.device').textContent")
        assert f"live from prime serve at {url}" in device, device
        browser.js("document.getElementById('speed').value = 0;")
        run_generation(browser, "It was", 40, 5)
        browser.js("document.getElementById('export').click();")
        exported = browser.wait("window.primeExport", 30, "the export")
        got = [json.loads(line) for line in list(exported.values())[0].splitlines() if line.strip()]
        assert len(got) == len(lines), f"{len(got)} records streamed, the CLI wrote {len(lines)}"
        assert got[1:] == lines[1:], "the streamed steps or ending differ from prime generate --trajectory"
        assert got[0]["model"] == lines[0]["model"] and got[0]["fixed"] == lines[0]["fixed"]
        shown = browser.js(f"return {p}.grid.cells.map(c => c.token);")
        assert shown == lines[-1]["outcome"]["tokens"], "the final cells differ from the server's ending"
        l = lines[0]["model"]["subtokens"]
        partial = browser.js(f"return {p}.steps.findIndex(v => {p}.cells(v).some(c => c.known > 0 && c.known < {l}))")
        assert partial >= 0, "no partly revealed token was shown"
        browser.js("window.prime.show(arguments[0])", partial)
        browser.screenshot("page-server.png")
        browser.js("window.prime.show(null)")
        # A request the server refuses: its message in the panel, and the panel stays usable.
        browser.js("document.getElementById('steps').value = 600; document.getElementById('start').click();")
        error = browser.wait(f"!{p}.el.querySelector('.error').hidden && {p}.el.querySelector('.error').textContent",
                             60, "the refusal")
        assert "settings.steps" in error and "--max-steps" in error, error
        run_generation(browser, "It was", 8, 2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # The server is gone now.
    open_page(browser, base, "server=" + urllib.parse.quote(url, safe=""))
    p = PANEL.format(i=0)
    error = browser.wait(f"!{p}.el.querySelector('.error').hidden && {p}.el.querySelector('.error').textContent",
                         60, "the message of a server that is down")
    print(f"      server down: {error}", flush=True)
    assert error.startswith(f"cannot reach prime serve at {url}"), error
    # An image model's run streams its pixels.
    proc, url = start_prime_serve("fashion-prime")
    try:
        open_page(browser, base, "server=" + urllib.parse.quote(url, safe=""))
        info = wait_ready(browser)
        assert info["model"]["image"], info
        run_generation(browser, "", 16, 3)
        pixels = browser.js(f"return {p}.steps.map(s => s.pixels.length)")
        assert len(pixels) == 17 and set(pixels) == {info["model"]["length"]}, pixels
        assert browser.js(f"return {p}.isImage && {p}.grid.constructor.name") == "PixelGrid"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def serve_folder(folder):
    """A static server of `folder` on a free port: (server, its URL)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def typescript(folder, *args):
    """Runs tsc in `folder`; fails with its messages."""
    out = subprocess.run(["tsc", "--noEmit", "--target", "es2022", "--lib", "esnext,dom", *args], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"tsc {' '.join(args)}:\n{out.stdout}{out.stderr}"


@test
def npm_package_in_a_plain_page(browser):
    """The packed npm package, installed from its tarball into a scratch folder, generates from a
    plain page without a bundler (web/examples) on WebGPU and on the CPU (the CPU's tokens those
    of native prime); its types check against what the runtime wrote (tsc: the records and the
    model info as literals of the declared types), its index.js against the wasm exports'
    generated types, and it exports what index.d.ts declares."""
    packed = subprocess.run([os.path.join(ROOT, "web", "pack.sh")], check=True, capture_output=True, text=True)
    tarball = packed.stdout.strip().splitlines()[-1]
    print(f"      {packed.stderr.strip().splitlines()[-1]}", flush=True)
    scratch = tempfile.mkdtemp(prefix="prime-npm-")
    subprocess.run(["npm", "install", "--offline", "--no-audit", "--no-fund", tarball], cwd=scratch, check=True,
                   capture_output=True, text=True, timeout=300)
    package = os.path.join(scratch, "node_modules", "prime-web")
    shutil.copy(os.path.join(ROOT, "web", "examples", "index.html"), scratch)
    shutil.copytree(os.path.join(ROOT, "assets", "prime"), os.path.join(scratch, "models", "prime"))
    server, url = serve_folder(scratch)
    try:
        found = {}
        # SwiftShader is slow: a few steps there, the CPU's run compared with native.
        for backend, steps in (("webgpu", 4), ("cpu", 32)):
            started = time.time()
            browser.get(f"{url}index.html?backend={backend}&steps={steps}&seed=3")
            browser.wait("!document.getElementById('go').disabled || window.example", 300, f"the example to load ({backend})")
            browser.js("document.getElementById('go').click()")
            found[backend] = browser.wait("window.example", 600, f"the example to generate ({backend})")
            assert "error" not in found[backend], found[backend]
            assert found[backend]["info"]["device"]["backend"] == {"webgpu": "wgpu", "cpu": "flex"}[backend]
            assert len(found[backend]["steps"]) == steps + 1, len(found[backend]["steps"])
            text = browser.js("return document.getElementById('text').textContent")
            assert text == found[backend]["ending"]["text"], text[:80]
            print(f"      {backend}: {steps} steps in {time.time() - started:.0f} s with the load", flush=True)
        assert found["cpu"]["ending"]["outcome"]["tokens"] == native_tokens("It was", 32, 3, "cpu"), \
            "the package's CPU tokens differ from native prime"
    finally:
        server.shutdown()
    # The declared types against what the runtime wrote: text records from the page, image
    # records (with pixels) from native prime.
    _, image = native_image_trajectory()
    cpu = found["cpu"]
    with open(os.path.join(scratch, "check.ts"), "w", encoding="utf-8") as f:
        f.write("import type { Ending, Header, ModelInfo, Step, StepRecord } from 'prime-web';\n")
        f.write(f"export const info: ModelInfo = {json.dumps(cpu['info'])};\n")
        f.write(f"export const header: Header = {json.dumps(cpu['header'])};\n")
        f.write(f"export const steps: Step[] = {json.dumps(cpu['steps'])};\n")
        f.write(f"export const ending: Ending = {json.dumps(cpu['ending'])};\n")
        f.write(f"export const imageHeader: Header = {json.dumps(image[0])};\n")
        f.write(f"export const imageSteps: StepRecord[] = {json.dumps(image[1:-1])};\n")
        f.write(f"export const imageEnding: Ending = {json.dumps(image[-1])};\n")
    typescript(scratch, "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "check.ts")
    typescript(package, "--allowJs", "--checkJs", "--module", "es2022", "--moduleResolution", "bundler", "index.js")
    exported = lambda text: set(re.findall(r"^export (?:async )?(?:function\*?|class|const) (\w+)", text, re.M))
    declared = exported(open(os.path.join(package, "index.d.ts"), encoding="utf-8").read())
    implemented = exported(open(os.path.join(package, "index.js"), encoding="utf-8").read())
    assert declared == implemented, f"index.d.ts declares {sorted(declared)}, index.js exports {sorted(implemented)}"


@test
def api_generate_with_callback(browser, base):
    browser.get(base + "api-check.html")
    result = browser.wait("window.result", 300, "the API check")
    assert "error" not in result, result.get("error")
    assert result["aborted"] is None and result["seen"] == 3, f"abort from the callback: {result}"
    assert result["views"] == 17, f"{result['views']} step callbacks for 16 steps"
    assert result["sameViews"], "generate() and step() gave different steps for the same request"
    assert result["tokens"] == result["steppedTokens"]
    assert "unknown field" in (result["badRequest"] or ""), f"bad request: {result['badRequest']!r}"


@test
def abort_pause_step(browser, base):
    open_page(browser, base, "backend=cpu&models=models/prime/")
    wait_ready(browser)
    p = PANEL.format(i=0)
    browser.js("""document.getElementById('steps').value = 64;
                  document.getElementById('speed').value = 100;
                  document.getElementById('start').click();""")
    browser.wait(f"{p}.steps.length >= 3", 120, "a few steps")
    pause_and_step(browser, p)
    browser.js("document.getElementById('pause').click();")  # resume
    browser.wait(f"{p}.phase === 'running'", 60, "the resume")
    browser.js("document.getElementById('abort').click();")
    browser.wait(f"{p}.phase === 'ready'", 60, "the abort")
    time.sleep(0.5)
    state = browser.js(f"""return {{error: {p}.el.querySelector('.error').hidden ? null : {p}.el.querySelector('.error').textContent,
        start: document.getElementById('start').disabled, steps: {p}.steps.length}}""")
    assert state["error"] is None and not state["start"], f"after abort: {state}"
    assert state["steps"] < 65, "the abort did not stop the run"
    browser.js("document.getElementById('speed').value = 0;")
    run_generation(browser, "It was", 8, 1)


@test
def controls_answer_at_full_speed(browser, base, backend):
    """At speed 0 (no pause between steps) Pause, Step, Resume and Abort each take effect within
    a step or two, in both panels: each worker's step loop yields to its message queue after
    every step."""
    open_page(browser, base, f"backend={backend}&models=models/prime/,models/mdlm/")
    wait_ready(browser, 0)
    wait_ready(browser, 1)
    p = PANEL.format(i=0)
    q = PANEL.format(i=1)
    # Top-p 1: responsiveness, not truncation, is checked here (the cutoff kernel costs
    # seconds a step on SwiftShader).
    browser.js("""document.getElementById('steps').value = 128;
                  document.getElementById('speed').value = 0;
                  document.getElementById('top_p').value = '1';
                  document.getElementById('start').click();""")
    browser.wait(f"{p}.steps.length >= 3", 120, "a few steps")
    labels = browser.js(f"""return {{speed: document.getElementById('speed-value').textContent,
        timeline: document.getElementById('timeline-label').textContent,
        stats: [...{p}.el.querySelectorAll('.stats [data-stat]')].map(e => [e.dataset.stat, e.firstChild.textContent])}}""")
    stats = dict(labels["stats"])
    assert labels["speed"] == "0 ms between steps", f"speed label: {labels['speed']!r}"
    assert labels["timeline"].startswith("live"), f"timeline label during the run: {labels['timeline']!r}"
    # A collapsible legend names every mark of the text view.
    legend = browser.js("""const l = document.getElementById('legend');
        return {tag: l.tagName, text: l.querySelector('.legend-text').textContent, shown: getComputedStyle(l.querySelector('.legend-text')).display}""")
    assert legend["tag"] == "DETAILS" and legend["shown"] != "none", legend
    for mark in ("held fixed", "share of the token's digits revealed", "masked digit", "revealed at this step", "guess"):
        assert mark in legend["text"], f"the legend lacks {mark!r}: {legend['text']!r}"
    # Both panels' stats lines take the same height, and each grid fills its panel's width.
    layout = browser.js(f"""return [{p}, {q}].map(x => {{
        const g = x.grid.geometry, used = g.cols * (g.width + 3) - 3;
        return [x.el.querySelector('.stats').offsetHeight, g.avail - used, g.cols];
    }})""")
    assert layout[0][0] == layout[1][0], f"the stats lines differ in height: {layout}"
    # (Whole pixels per cell: less than one pixel per column is left over.)
    assert all(0 <= gap < cols for _, gap, cols in layout), f"grids leave a strip on the right: {layout}"
    browser.js("document.getElementById('legend').open = true;")
    browser.screenshot(f"page-legend-{backend}.png")
    # Each panel says how its model was trained (from the folder's training.json).
    trained = browser.js(f"return [{p}, {q}].map(x => x.el.querySelector('.training')?.textContent ?? null)")
    assert all(t and t.startswith("How it was trained: trained ") and "tokens" in t for t in trained), trained
    # Bytes read back are shown only where a GPU runs the steps, with a unit.
    if backend == "cpu":
        assert not any("read" in k for k in stats), f"the CPU backend shows read-back bytes: {stats}"
    else:
        assert re.fullmatch(r"[0-9.]+ (B|kB|MB)", stats.get("read back / step", "")), f"read-back label: {stats}"
    # "Within a step or two": the bound scales with the slowest step so far (seconds on a
    # software WebGPU adapter with both panels truncating on it).
    step_s = browser.js(f"return Math.max(...[{p}, {q}].flatMap(x => x.steps.map(v => v.ms))) / 1000")
    within = max(10.0, 3 * step_s)
    browser.js("document.getElementById('pause').click();")
    browser.wait(f"{p}.phase === 'paused' && {q}.phase === 'paused'", within, "the pause at speed 0")
    paused_at = browser.js(f"return {p}.steps.length")
    other_at = browser.js(f"return {q}.steps.length")
    time.sleep(1.0)
    assert browser.js(f"return {p}.steps.length") == paused_at, "steps went on after the pause"
    assert browser.js(f"return {q}.steps.length") == other_at, "the second panel went on after the pause"
    assert paused_at < 100, f"the pause took effect only at step {paused_at}"
    browser.js("document.getElementById('step').click();")
    browser.wait(f"{p}.steps.length === {paused_at + 1} && {p}.phase === 'paused'", within, "one more step")
    browser.js("document.getElementById('pause').click();")  # resume
    browser.wait(f"{p}.phase === 'running' && {p}.steps.length > {paused_at + 2}", 3 * within, "the resume")
    browser.js("document.getElementById('abort').click();")
    browser.wait(f"{p}.phase === 'ready' && {q}.phase === 'ready'", within, "the abort at speed 0")
    stopped = browser.js(f"return {p}.steps.length")
    time.sleep(1.0)
    assert browser.js(f"return {p}.steps.length") == stopped, "steps went on after the abort"
    assert stopped < 129, "the abort did not stop the run"
    browser.js("document.getElementById('top_p').value = '';")


@test
def serves_gzipped_files():
    """web/serve.py sends the gzipped module where the browser accepts gzip, the plain one
    otherwise, with the right type either way."""
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "web", "serve.py"), DIST, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/pkg/prime_web_bg.wasm"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2)
                break
            except Exception:
                time.sleep(0.1)
        raw = open(os.path.join(DIST, "pkg", "prime_web_bg.wasm"), "rb").read()
        packed = urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Encoding": "gzip"}), timeout=60)
        body = packed.read()
        assert packed.headers["Content-Encoding"] == "gzip", dict(packed.headers)
        assert packed.headers["Content-Type"] == "application/wasm", dict(packed.headers)
        assert len(body) < len(raw) / 3 and gzip.decompress(body) == raw, f"{len(body)} of {len(raw)} bytes"
        plain = urllib.request.urlopen(url, timeout=60)
        assert plain.headers.get("Content-Encoding") is None and plain.read() == raw
        print(f"      wasm: {len(raw) / 1e6:.1f} MB raw, {len(body) / 1e6:.1f} MB sent gzipped", flush=True)
    finally:
        server.terminate()
        server.wait()


@test
def model_cache(browser, base):
    for _ in range(2):
        open_page(browser, base, "backend=cpu&models=models/prime/")
        wait_ready(browser)
    cached = browser.js(f"return {PANEL.format(i=0)}.cached")
    assert cached and "model.safetensors" in cached, f"second load did not come from the Cache API: {cached}"


@test
def end_to_end(browser, base):
    browser.console_errors()  # drain what earlier pages logged
    open_page(browser, base, "backend=webgpu")
    wait_ready(browser, 0)
    wait_ready(browser, 1)
    # Before anything has run, the status line says what to do.
    hint = browser.wait("document.getElementById('status').textContent.includes('press Start') && "
                        "document.getElementById('status').textContent", 10, "the hint to press Start")
    print(f"      status before a run: {hint}", flush=True)
    # Top-p 1: on SwiftShader the cutoff kernel costs seconds a step (truncation on WebGPU is
    # webgpu_device_executor_equals_host_executor's to check).
    browser.js("document.getElementById('top_p').value = '1';")
    run_generation(browser, "It was", 16, 3, n_panels=2)
    browser.js("document.getElementById('top_p').value = '';")
    l = browser.js(f"return {PANEL.format(i=0)}.info.model.subtokens")
    assert l > 1, "the first panel should be the Prime model"
    # A step at which the page showed a token with 0 < k < ℓ digits revealed.
    partial = browser.js(
        f"""const s = {PANEL.format(i=0)}.steps;
        return s.findIndex(v => {PANEL.format(i=0)}.cells(v).some(c => c.known > 0 && c.known < {l}));""")
    assert partial >= 0, "no step had a partly revealed token"
    # Scrub the timeline back to it, as a user would, and check the cells on the page.
    browser.js(
        """const t = document.getElementById('timeline'); t.value = arguments[0];
        t.dispatchEvent(new Event('input'));""", partial)
    # What the canvas shows: the cells it drew, and its pixels at a masked and at a known slot of
    # a partly revealed cell (a masked slot is never outlined as fresh; 1 px inside its corner no
    # glyph reaches).
    shown = browser.js(
        f"""const p = {PANEL.format(i=0)}, cells = p.grid.cells;
        const i = cells.findIndex(c => c.known > 0 && c.known < {l});
        // Only rows near the viewport are painted: scroll the cell into view first.
        if (i >= 0) {{
          window.scrollBy(0, p.grid.rectOf(i).top - 100);
          window.dispatchEvent(new Event('scroll'));
        }}
        const pixel = (j) => {{
          const b = p.grid.slotBox(i, j), dpr = p.grid.geometry.dpr;
          const d = p.grid.canvas.getContext('2d').getImageData(Math.round((b.x + 1.5) * dpr), Math.round((b.y + 1.5) * dpr), 1, 1).data;
          return [d[0], d[1], d[2]];
        }};
        const digits = i >= 0 ? cells[i].digits : [];
        const fresh = new Set(p.viewAt({partial}).revealed);
        const known = digits.findIndex((d, j) => d != null && !fresh.has(i * {l} + j));
        return {{label: document.getElementById('timeline-label').textContent, index: i,
                partial: cells.filter(c => c.known > 0 && c.known < {l}).length,
                masks: cells.reduce((a, c) => a + c.digits.filter(d => d == null).length, 0),
                masked_pixel: i >= 0 ? pixel(digits.findIndex(d => d == null)) : null,
                known_pixel: known >= 0 ? pixel(known) : null}};""")
    assert shown["label"].startswith(str(partial)), f"timeline shows {shown['label']}, not step {partial}"
    assert shown["partial"] > 0 and shown["masks"] > 0, f"scrubbed page shows no partial token: {shown}"
    assert shown["masked_pixel"] == [0xe4, 0xe4, 0xe4], f"a masked slot is painted {shown['masked_pixel']}"
    assert shown["known_pixel"] in (None, [255, 255, 255]), f"a known slot is painted {shown['known_pixel']}"
    # Hover a partly revealed cell: the tooltip lists its consistent set.
    tip = browser.js(
        f"""const p = {PANEL.format(i=0)}, r = p.grid.rectOf(arguments[0]);
        p.grid.canvas.dispatchEvent(new MouseEvent('mousemove',
          {{bubbles: true, clientX: (r.left + r.right) / 2, clientY: (r.top + r.bottom) / 2}}));
        return document.getElementById('tooltip').textContent;""", shown["index"])
    assert "consistent with the revealed digits" in tip, f"tooltip: {tip!r}"
    browser.screenshot("page-partial-step.png")
    browser.js(f"{PANEL.format(i=0)}.el.closest('#panels').dispatchEvent(new MouseEvent('mouseleave'));")
    # Back to the newest step; export; the export's final tokens are what the page shows.
    browser.js("""const t = document.getElementById('timeline'); t.value = t.max; t.dispatchEvent(new Event('input'));
                  document.getElementById('export').click();""")
    exported = browser.wait("window.primeExport", 30, "the export")
    assert len(exported) == 2, f"exported {list(exported)}"
    for i in range(2):
        name = browser.js(f"return {PANEL.format(i=i)}.spec.name")
        lines = [json.loads(line) for line in exported[name].splitlines() if line.strip()]
        header, steps, ending = lines[0], lines[1:-1], lines[-1]
        assert header["format"] == "prime-trajectory" and header["version"] == 1, header
        shown_tokens = browser.js(f"return {PANEL.format(i=i)}.grid.cells.map(c => c.token);")
        want = ending["outcome"]["tokens"]
        first = next((k for k, (a, b) in enumerate(zip(want, shown_tokens)) if a != b), None)
        assert want == shown_tokens, (f"{name}: export differs from the page at position {first}: "
                                      f"{want[first - 2:first + 3] if first else want[:5]} vs "
                                      f"{shown_tokens[first - 2:first + 3] if first else shown_tokens[:5]}")
        assert len(steps) == header["request"]["settings"]["steps"] + 1
    text = browser.js(f"return {PANEL.format(i=0)}.el.querySelector('.final-text').textContent")
    assert text.startswith("It was"), f"final text {text[:60]!r}"
    browser.screenshot("page-final.png")
    errors = browser.console_errors()
    assert not errors, f"console errors: {[e[:300] for e in errors]}"


@test
def image_mode_and_inpainting(browser, base):
    """The image switch, both image models side by side on one seed, a partly revealed pixel on
    the canvas and in the tooltip, and inpainting a sample; with the default backend, which here
    (SwiftShader, a software WebGPU adapter) is the CPU: a step of these models takes ~6 s on
    SwiftShader and ~0.1 s on the CPU."""
    browser.console_errors()  # drain what earlier pages logged
    open_page(browser, base, "kind=image")
    prime, mdlm = wait_ready(browser, 0), wait_ready(browser, 1)
    # The default backend does not use a software WebGPU adapter (SwiftShader here): the CPU.
    for info in (prime, mdlm):
        device = info["device"]
        assert device["backend"] == "flex" and "software adapter" in (device["notice"] or ""), device
        # The panel says how the CPU path runs: the build is made with SIMD128.
        line = browser.js(f"return {PANEL.format(i=0)}.el.querySelector('.device span').textContent")
        assert "CPU (burn-flex, one thread, SIMD128)" in line, line
        # The notice names the adapter (from the browser's GPUAdapter.info where wgpu's is empty).
        print(f"      notice: {device['notice']}", flush=True)
        assert "unnamed" not in device["notice"], device["notice"]
    assert prime["model"]["image"] == {"width": 14, "height": 14} and prime["model"]["subtokens"] == 2, prime["model"]
    assert mdlm["model"]["image"] == {"width": 14, "height": 14} and mdlm["model"]["subtokens"] == 1, mdlm["model"]
    shown = browser.js("""const display = (el) => getComputedStyle(el).display;
        return [display(document.getElementById('prompt').closest('label')),
                display(document.getElementById('inpaint-box')), document.getElementById('kind').value,
                document.getElementById('kind-box').hidden];""")
    assert shown == ["none", "block", "image", False], f"image mode controls: {shown}"
    run_generation(browser, "", 24, 5, n_panels=2)
    p = PANEL.format(i=0)
    # The step with the most partly revealed pixels; scrub to it and read the canvas there.
    counts = browser.js(f"return {p}.steps.map(v => v.pixels.filter(x => x !== null && typeof x === 'object').length);")
    partial = max(range(len(counts)), key=lambda k: counts[k])
    assert counts[partial] > 0, "no step had a partly revealed pixel"
    browser.js("""const t = document.getElementById('timeline'); t.value = arguments[0];
        t.dispatchEvent(new Event('input'));""", partial)
    seen = browser.js(f"""const g = {p}.grid, i = g.pixels.findIndex(x => x !== null && typeof x === 'object');
        const m = g.pixels.findIndex(x => x === null);
        return {{index: i, level: g.pixels[i].level, lowest: g.pixels[i].lowest, highest: g.pixels[i].highest,
                edge: g.colourAt(i, 1, 1), centre: g.colourAt(i, 8, 8),
                masked: m >= 0 ? g.colourAt(m, 8, 8) : null}};""")
    grey = round(seen["level"])
    assert seen["edge"] == [grey] * 3, f"a partly revealed pixel is painted {seen['edge']}, not its mean level {grey}"
    assert seen["centre"] == [0xff, 0x8c, 0x00], f"no marker on a partly revealed pixel: {seen['centre']}"
    assert seen["masked"] in (None, [0x3b, 0x5b, 0xdb]), f"a masked pixel is painted {seen['masked']}"
    browser.js("document.getElementById('panels').scrollIntoView();")  # the panels whole in the screenshots
    tip = browser.js(f"""const r = {p}.grid.rectOf(arguments[0]);
        {p}.grid.canvas.dispatchEvent(new MouseEvent('mousemove',
          {{bubbles: true, clientX: (r.left + r.right) / 2, clientY: (r.top + r.bottom) / 2}}));
        return document.getElementById('tooltip').textContent;""", seen["index"])
    want = f"16 grey levels possible, {seen['lowest']}–{seen['highest']}"
    assert want in tip and "digits [" in tip, f"tooltip {tip!r} lacks {want!r}"
    browser.screenshot("page-image-partial-step.png")
    browser.screenshot("page-image-panels.png", "#panels")
    browser.js(f"{p}.el.closest('#panels').dispatchEvent(new MouseEvent('mouseleave'));")
    browser.js("const t = document.getElementById('timeline'); t.value = t.max; t.dispatchEvent(new Event('input'));")
    for i in range(2):
        q = PANEL.format(i=i)
        pixels = browser.js(f"return {q}.grid.pixels")
        assert pixels == final_tokens(browser, i), f"panel {i} does not show its final sample"
    seeds = browser.js("return window.prime.panels.map(p => p.header.request.settings.seed)")
    assert seeds == [5, 5], f"the two models ran with seeds {seeds}"
    # The shipped image models are class-conditioned: the class controls show, and by default
    # ("by seed") seed 5 draws the sixth class in both panels, which each panel names.
    classes = prime["model"].get("classes") or []
    assert len(classes) == 10 and mdlm["model"].get("classes") == classes, f"the models' classes: {classes}"
    named = browser.js(f"""return [getComputedStyle(document.getElementById('class').closest('label')).display,
        window.prime.panels.map(p => p.header.request.class),
        {p}.el.querySelector('[data-stat="class"] b').textContent, document.getElementById('class').options.length]""")
    assert named == ["flex", [classes[5]] * 2, classes[5], 12], f"class controls: {named}"
    # Each panel tells both legs of its model's training (the second started from the first).
    trained = browser.js("return window.prime.panels.map(x => x.el.querySelector('.training')?.textContent ?? null)")
    assert all(t and t.startswith("How it was trained: a snapshot at step ") and ", then trained 4,000 steps" in t
               for t in trained), trained

    # Inpainting: the first panel's sample, a 7 × 7 square erased by dragging over it.
    browser.js("document.getElementById('take-sample').click();")
    source = browser.js("return [...window.prime.inpaint.levels]")
    assert source == final_tokens(browser, 0), "the source is not the first panel's sample"
    browser.js("""const c = document.getElementById('source'), r = c.getBoundingClientRect();
        const at = (x, y) => ({bubbles: true, clientX: r.left + 16 * x + 8, clientY: r.top + 16 * y + 8});
        c.dispatchEvent(new MouseEvent('mousedown', at(3, 4)));
        c.dispatchEvent(new MouseEvent('mousemove', at(9, 10)));
        c.dispatchEvent(new MouseEvent('mouseup', at(9, 10)));""")
    erased = browser.js("return [...window.prime.inpaint.erased]")
    want = [1 if 3 <= i % 14 <= 9 and 4 <= i // 14 <= 10 else 0 for i in range(196)]
    assert erased == want, f"erased {sum(erased)} pixels, not the 7 × 7 square dragged"
    painted = browser.js("""const c = document.getElementById('source'), g = c.getContext('2d'), dpr = c.width / 224;
        const at = (x, y) => [...g.getImageData(Math.round((16 * x + 8) * dpr), Math.round((16 * y + 8) * dpr), 1, 1).data.slice(0, 3)];
        return [at(5, 5), at(0, 0)];""")
    assert painted == [[0x3b, 0x5b, 0xdb], [source[0]] * 3], f"the source canvas shows {painted}"
    browser.js("document.getElementById('inpaint').click();")
    for i in range(2):
        q = PANEL.format(i=i)
        browser.wait(f"{q}.phase === 'done' || !{q}.el.querySelector('.error').hidden", 900, f"panel {i} to inpaint")
        error = browser.js(f"return {q}.el.querySelector('.error').hidden ? null : {q}.el.querySelector('.error').textContent")
        assert error is None, f"inpainting failed in panel {i}: {error}"
        tokens = final_tokens(browser, i)
        kept = [k for k in range(196) if not want[k]]
        changed = [k for k in kept if tokens[k] != source[k]]
        assert not changed, f"panel {i} changed pinned pixels {changed[:5]}"
        fixed = browser.js(f"return {q}.header.fixed")
        assert fixed == [not e for e in want], f"panel {i}: the pinned positions are not the kept ones"
        first = browser.js(f"return {q}.steps[0].pixels")
        assert all(first[k] == source[k] for k in kept), f"panel {i}: a pinned pixel is not known at the first step"
        open_slots = sum(1 for k in range(196) if want[k] and first[k] is None)
        assert open_slots > 30, f"panel {i}: only {open_slots} erased pixels were still masked after step 0"
    browser.screenshot("page-image-inpainted.png")
    # A class chosen by name: both models draw it.
    browser.js("document.getElementById('class').value = arguments[0];", classes[1])
    run_generation(browser, "", 4, 5, n_panels=2)
    drawn = browser.js("return window.prime.panels.map(p => p.header.request.class)")
    assert drawn == [classes[1]] * 2, f"asked for {classes[1]}, the panels drew {drawn}"
    browser.js("document.getElementById('class').value = 'each';")

    # A native image trajectory replays as pixels (the records carry them), ending on its tokens.
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "native-image.jsonl")
    subprocess.run([PRIME, "generate", "--steps", "12", "--seed", "2", "--device", "cpu", "--model",
                    os.path.join(ROOT, "assets", "fashion-prime"), "--trajectory", path, "--png",
                    os.path.join(ARTIFACTS, "native-image.png")], check=True, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    browser.js("window.prime.open(new File([arguments[0]], 'native-image.jsonl'));", open(path, encoding="utf-8").read())
    p = PANEL.format(i=0)
    browser.wait(f"window.prime.panels.length === 1 && {p}.spec.trajectory && {p}.phase === 'done'", 60, "the replay")
    assert browser.js(f"return {p}.grid.pixels") == lines[-1]["outcome"]["tokens"], "the replay's image differs from the file"
    shows = browser.js(f"return [{p}.isImage, getComputedStyle(document.getElementById('inpaint-box')).display]")
    assert shows == [True, "block"], f"a replayed image trajectory shows {shows}"
    # The switch brings the text models back, with the text controls.
    browser.js("const k = document.getElementById('kind'); k.value = 'text'; k.dispatchEvent(new Event('change'));")
    browser.wait("window.prime.panels.length === 2 && window.prime.panels.every(p => p.spec.kind === 'text')", 30, "the switch")
    wait_ready(browser, 0)
    shows = browser.js("""return [getComputedStyle(document.getElementById('prompt').closest('label')).display,
        getComputedStyle(document.getElementById('inpaint-box')).display]""")
    assert shows == ["flex", "none"], f"text mode shows {shows}"
    errors = browser.console_errors()
    assert not errors, f"console errors: {[e[:300] for e in errors]}"


@test
def inpaints_an_opened_picture_on_webgpu(browser, base):
    """The Prime image model on WebGPU (device executor, WGSL kernels) inpaints a picture opened
    through the page's file input: the picture is scaled to the grid in grey, the pinned pixels
    come back exactly. (SwiftShader takes ~6 s per step of this model, hence only 4 steps.)"""
    open_page(browser, base, "backend=webgpu&models=models/fashion-prime/")
    wait_ready(browser, 0)
    # A 28 × 28 picture: left half grey 200, right half red (grey 0.299 · 255 = 76), opened as
    # a user would (a File in the picker's change event).
    browser.js("""const c = Object.assign(document.createElement('canvas'), {width: 28, height: 28});
        const g = c.getContext('2d');
        g.fillStyle = 'rgb(200, 200, 200)'; g.fillRect(0, 0, 14, 28);
        g.fillStyle = 'rgb(255, 0, 0)'; g.fillRect(14, 0, 14, 28);
        c.toBlob((blob) => {
          const input = document.getElementById('open-image'), files = new DataTransfer();
          files.items.add(new File([blob], 'picture.png', {type: 'image/png'}));
          input.files = files.files;
          input.dispatchEvent(new Event('change'));
        });""")
    browser.wait("window.prime.inpaint.levels", 30, "the picture to open")
    levels = browser.js("return [...window.prime.inpaint.levels]")
    assert len(levels) == 196, len(levels)
    for k, v in enumerate(levels):
        x = k % 14
        assert x in (6, 7) or v == (200 if x < 7 else 76), f"pixel {k} of the opened picture is {v}"
    browser.js("""const c = document.getElementById('source'), r = c.getBoundingClientRect();
        const at = (x, y) => ({bubbles: true, clientX: r.left + 16 * x + 8, clientY: r.top + 16 * y + 8});
        c.dispatchEvent(new MouseEvent('mousedown', at(10, 10)));
        window.dispatchEvent(new MouseEvent('mouseup', at(2, 2)));
        document.getElementById('steps').value = 4;
        document.getElementById('executor').value = 'auto';
        document.getElementById('inpaint').click();""")
    p = PANEL.format(i=0)
    browser.wait(f"{p}.phase === 'done' || !{p}.el.querySelector('.error').hidden", 600, "the inpainting")
    error = browser.js(f"return {p}.el.querySelector('.error').hidden ? null : {p}.el.querySelector('.error').textContent")
    assert error is None, f"inpainting failed: {error}"
    assert executor(browser) == "shader", f"ran with the {executor(browser)} executor"
    tokens = final_tokens(browser)
    erased = [2 <= k % 14 <= 10 and 2 <= k // 14 <= 10 for k in range(196)]
    assert browser.js("return [...window.prime.inpaint.erased]") == [int(e) for e in erased], \
        "the erased pixels are not the 9 × 9 square dragged"
    changed = [k for k in range(196) if not erased[k] and tokens[k] != levels[k]]
    assert not changed, f"pinned pixels changed: {changed[:5]}"
    assert all(isinstance(v, int) for v in browser.js(f"return {p}.grid.pixels")), "the final image has unknown pixels"


@test
def readable_failures(browser, base):
    cases = [
        ("broken/missing/", "HTTP 404"),
        ("broken/missing-weights/", "model.safetensors: HTTP 404"),
        ("broken/truncated/", "model.safetensors"),
        ("broken/short/", "model.safetensors: truncated"),
        ("broken/bad-config/", "config.json: vocab_size"),
        ("broken/too-large/", "not enough memory for model.safetensors"),
    ]
    for folder, expect in cases:
        open_page(browser, base, f"models={folder}")
        p = PANEL.format(i=0)
        browser.wait(f"!{p}.el.querySelector('.error').hidden", 120, f"an error for {folder}")
        message = browser.js(f"return {p}.el.querySelector('.error').textContent")
        print(f"      {folder}: {message}", flush=True)
        assert expect in message, f"{folder}: {message!r} does not mention {expect!r}"
        state = browser.js("return [document.body.dataset.phase, document.getElementById('status').textContent]")
        assert state[0] != "loading", f"{folder}: page still loading: {state}"


@test
def missing_webgpu_falls_back(driver):
    browser = Browser(driver, webgpu=False)
    try:
        open_page(browser, BASE, "models=models/prime/")
        info = wait_ready(browser)
        assert info["device"]["backend"] == "flex", f"ran on {info['device']['backend']}"
        notice = browser.js(f"return {PANEL.format(i=0)}.el.querySelector('.notice')?.textContent")
        print(f"      notice: {notice}", flush=True)
        assert notice and "CPU" in notice, f"no notice of the fallback: {notice!r}"
        run_generation(browser, "It was", 8, 1)
    finally:
        browser.close()


def main():
    global BASE
    if not os.path.isfile(os.path.join(DIST, "pkg", "prime_web_bg.wasm")):
        sys.exit(f"error: {DIST} has no built page; run web/run.sh --build-only first")
    for tool in (CHROMIUM, CHROMEDRIVER, PRIME, shutil.which("tsc") or "tsc (npm install -g typescript)"):
        if not os.path.exists(tool):
            sys.exit(f"error: {tool} not found")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    server, BASE = start_server()
    driver, driver_url = start_driver()
    try:
        only = set(sys.argv[1:])
        browser = Browser(driver_url)
        try:
            plan = [
                ("golden_parity", lambda: golden_parity(browser, BASE, "webgpu")),
                ("golden_parity", lambda: golden_parity(browser, BASE, "cpu")),
                ("shaders_equal_twins", lambda: shaders_equal_twins(browser, BASE)),
                ("cpu_fallback_equals_native", lambda: cpu_fallback_equals_native(browser, BASE)),
                ("adaptive_policy_equals_native", lambda: adaptive_policy_equals_native(browser, BASE)),
                ("webgpu_device_executor_equals_host_executor",
                 lambda: webgpu_device_executor_equals_host_executor(browser, BASE)),
                ("replays_a_native_trajectory", lambda: replays_a_native_trajectory(browser, BASE)),
                ("api_generate_with_callback", lambda: api_generate_with_callback(browser, BASE)),
                ("watches_a_prime_serve_run", lambda: watches_a_prime_serve_run(browser, BASE)),
                ("model_cache", lambda: model_cache(browser, BASE)),
                ("abort_pause_step", lambda: abort_pause_step(browser, BASE)),
                ("controls_answer_at_full_speed", lambda: controls_answer_at_full_speed(browser, BASE, "cpu")),
                ("controls_answer_at_full_speed", lambda: controls_answer_at_full_speed(browser, BASE, "webgpu")),
                ("end_to_end", lambda: end_to_end(browser, BASE)),
                ("image_mode_and_inpainting", lambda: image_mode_and_inpainting(browser, BASE)),
                ("inpaints_an_opened_picture_on_webgpu", lambda: inpaints_an_opened_picture_on_webgpu(browser, BASE)),
                ("readable_failures", lambda: readable_failures(browser, BASE)),
                ("untrusted_names_are_text", lambda: untrusted_names_are_text(browser, BASE)),
                ("opens_a_local_model_folder", lambda: opens_a_local_model_folder(browser, BASE)),
                ("draws_official_size_steps", lambda: draws_official_size_steps(browser, BASE)),
                ("f16_model_cut_into_blocks", lambda: f16_model_cut_into_blocks(browser, BASE)),
            ]
            for name, step in plan:
                if not only or name in only:
                    step()
        finally:
            browser.close()
        if not only or "missing_webgpu_falls_back" in only:
            missing_webgpu_falls_back(driver_url)
        if not only or "npm_package_in_a_plain_page" in only:
            package_browser = Browser(driver_url)
            try:
                npm_package_in_a_plain_page(package_browser)
            finally:
                package_browser.close()
        if not only or "serves_gzipped_files" in only:
            serves_gzipped_files()
    finally:
        driver.terminate()
        server.shutdown()
    failed = [r for r in RESULTS if not r[1]]
    print(f"\nbrowser tests: {len(RESULTS) - len(failed)} passed, {len(failed)} failed; screenshots in {ARTIFACTS}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
