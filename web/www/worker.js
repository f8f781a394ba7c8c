// The Web Worker that owns one model: it downloads the model folder (with progress, kept in
// the Cache API) or reads it from local files, loads it into prime-web (WebGPU, or the CPU
// fallback), and steps generations, posting every step's trajectory record to the page.
// Sampling itself happens in Rust: on WebGPU the sampler's kernels run on the GPU and only a
// few numbers per step are read.

import init, { Engine, check_config, parse_trajectory } from './pkg/prime_web.js';
import { FromWorker, MODEL_CACHE, ToWorker } from './protocol.js';

let engine = null;
let generation = null;
let running = false;
let delayMs = 0;
let stepping = null;

const post = (type, body = {}) => self.postMessage({ type, ...body });
const message = (e) => (e && e.message) || String(e);
const megabytes = (n) => `${(n / 1e6).toFixed(0)} MB`;

// A buffer of `n` bytes for the file `name`, or an error that says memory ran out.
function allocate(n, name) {
  try {
    return new Uint8Array(n);
  } catch (e) {
    throw new Error(`not enough memory for ${name} (${megabytes(n)}): ${message(e)}; close other tabs or use a model stored as f16`);
  }
}

// What a trap inside the wasm module means. Rust aborts on a failed allocation (the usual
// cause, with hundreds of MB of weights) as on a panic, so the message says which is likely
// from the module's memory size; the module cannot be used after a trap.
let wasm = null;
function explain(e, what) {
  const text = message(e);
  if (!(e instanceof WebAssembly.RuntimeError || /out of memory|allocation failed/i.test(text))) return e;
  const size = wasm ? wasm.memory.buffer.byteLength : 0;
  return new Error(`the runtime stopped ${what} (${text}) with ${megabytes(size)} of wasm memory in use; ` +
    'if that is near the browser\'s limit the tab ran out of memory: close other tabs, use a smaller model or one ' +
    'stored as f16 (prime convert --dtype f16), and reload');
}

// Downloads `url` with progress; `optional` files answer null on 404. A response shorter than
// its Content-Length is a truncated download and an error.
async function download(url, name, optional) {
  let cache = null;
  try {
    cache = await caches.open(MODEL_CACHE);
    const hit = await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      post(FromWorker.PROGRESS, { file: name, loaded: bytes.length, total: bytes.length, cached: true });
      return bytes;
    }
  } catch (_) {
    cache = null; // no Cache API (e.g. an opaque origin): download every time
  }
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot download ${name}: ${message(e)}`);
  }
  if (response.status === 404 && optional) return null;
  if (!response.ok) throw new Error(`cannot download ${name}: HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('Content-Length')) || 0;
  const reader = response.body.getReader();
  // With a known length the bytes go straight into one buffer: a download of hundreds of MB is
  // held once, not as chunks plus a copy.
  let bytes = total ? allocate(total, name) : null;
  const chunks = [];
  let loaded = 0;
  for (;;) {
    let part;
    try {
      part = await reader.read();
    } catch (e) {
      throw new Error(`download of ${name} broke off after ${loaded} bytes: ${message(e)}`);
    }
    if (part.done) break;
    if (!bytes) chunks.push(part.value);
    else if (loaded + part.value.length <= total) bytes.set(part.value, loaded);
    loaded += part.value.length;
    post(FromWorker.PROGRESS, { file: name, loaded, total });
  }
  if (total && loaded !== total) {
    throw new Error(`download of ${name} is truncated: ${loaded} of ${total} bytes`);
  }
  if (!bytes) {
    bytes = allocate(loaded, name);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
  }
  if (cache) {
    try {
      await cache.put(url, new Response(bytes, { headers: { 'Content-Length': String(loaded) } }));
    } catch (_) {
      // Quota or private mode: the model still runs, it is just not kept.
    }
  }
  return bytes;
}

// Reads a local file (from the page's "Open model" picker or a drop), with progress.
async function readLocal(file, name) {
  if (!file) return null;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    post(FromWorker.PROGRESS, { file: name, loaded: bytes.length, total: bytes.length });
    return bytes;
  } catch (e) {
    throw new Error(`cannot read ${name} (${file.name}): ${message(e)}`);
  }
}

// The model folder from a URL (downloaded, cached) or from local files.
async function load({ base, files, backend, maxBinding }) {
  const folder = files ? null : new URL(base, self.location.href);
  const get = (name, optional) => (files ? readLocal(files[name], name) : download(new URL(name, folder).href, name, optional));
  const config = new TextDecoder().decode(await get('config.json', false));
  check_config(config);
  const weights = await get('model.safetensors', false);
  const tokenizer = await get('tokenizer.json', true);
  // How the model was trained (`prime-train` writes it), shown beside the model; optional.
  let training = null;
  try {
    const bytes = await get('training.json', true);
    training = bytes && JSON.parse(new TextDecoder().decode(bytes));
  } catch (_) {
    training = null;
  }
  post(FromWorker.PROGRESS, { file: 'initialising the device', loaded: 0, total: 0 });
  try {
    engine = await Engine.load(config, weights, tokenizer ?? undefined, backend, maxBinding ?? undefined);
  } catch (e) {
    const why = explain(e, `loading ${megabytes(weights.length)} of weights`);
    throw new Error(`cannot load the model from ${folder ? folder.pathname : base}: ${message(why)}`);
  }
  return { ...JSON.parse(engine.info()), training };
}

// One step of the current generation; a step that finishes after an abort or a new start is
// dropped.
async function stepOnce() {
  const current = generation;
  const started = performance.now();
  const view = JSON.parse(await current.step());
  if (current !== generation) return;
  post(FromWorker.STEP, { view, ms: performance.now() - started });
  if (current.is_done()) {
    running = false;
    post(FromWorker.DONE);
  }
}

// A task of its own for the loop to wait on, so that the page's messages (Pause, Step, Abort)
// queued meanwhile are handled between two steps. On the CPU backend a step's promise settles
// without ever leaving the microtask queue, and a loop awaiting only those never lets a message
// in. A MessageChannel message is a task without setTimeout's 4 ms clamp.
const tick = new MessageChannel();
const nextTask = () => new Promise((resolve) => {
  tick.port1.onmessage = () => resolve();
  tick.port2.postMessage(null);
});

// Only the newest loop runs: a resume during an older loop's pause between steps ends that one.
let loopId = 0;

async function runLoop() {
  const id = ++loopId;
  while (id === loopId && running && generation && !generation.is_done()) {
    stepping = stepOnce();
    await stepping;
    stepping = null;
    await (delayMs > 0 ? new Promise((r) => setTimeout(r, delayMs)) : nextTask());
  }
}

function fail(e) {
  running = false;
  post(FromWorker.ERROR, { message: message(explain(e, 'while generating')) });
}

self.onmessage = async ({ data }) => {
  try {
    switch (data.type) {
      case ToWorker.LOAD:
        wasm = await init();
        post(FromWorker.READY, { info: await load(data) });
        break;
      case ToWorker.START:
        if (stepping) await stepping.catch(() => {});
        generation = engine.start(JSON.stringify(data.request));
        delayMs = data.delayMs ?? 0;
        running = true;
        post(FromWorker.STARTED, { header: JSON.parse(generation.header()) });
        runLoop().catch(fail);
        break;
      case ToWorker.PAUSE:
        running = false;
        if (stepping) await stepping.catch(() => {});
        post(FromWorker.PAUSED);
        break;
      case ToWorker.RESUME:
        if (generation && !generation.is_done() && !running) {
          running = true;
          runLoop().catch(fail);
        }
        break;
      case ToWorker.STEP:
        if (generation && !generation.is_done() && !running && !stepping) {
          stepping = stepOnce();
          await stepping;
          stepping = null;
          post(FromWorker.PAUSED);
        }
        break;
      case ToWorker.ABORT:
        running = false;
        generation = null;
        post(FromWorker.ABORTED);
        break;
      case ToWorker.SPEED:
        delayMs = data.delayMs;
        break;
      case ToWorker.GOLDEN: {
        const response = await fetch(data.url);
        if (!response.ok) throw new Error(`cannot download ${data.url}: HTTP ${response.status}`);
        const cases = new Uint8Array(await response.arrayBuffer());
        post(FromWorker.GOLDEN, { deviation: await engine.logits_deviation(cases) });
        break;
      }
      case ToWorker.PARSE:
        wasm ??= await init();
        post(FromWorker.PARSED, { trajectory: parse_trajectory(data.text) });
        break;
      case ToWorker.KERNELS:
        post(FromWorker.KERNELS, { report: await engine.check_kernels() });
        break;
      default:
        throw new Error(`unknown message ${data.type}`);
    }
  } catch (e) {
    stepping = null;
    fail(e);
  }
};
