// prime-web: MDM-Prime in the browser. Loads a model folder (downloaded with progress and kept
// in the Cache API, or from local files) into the Rust runtime compiled to WebAssembly — on
// WebGPU, or on the CPU where there is none — and runs generations step by step, each step a
// trajectory record (the `prime-trajectory` format the native `prime` writes). Types:
// index.d.ts. The project's own page uses this module unchanged.

import init, { Engine, check_config, parse_trajectory } from './prime_web.js';

/** The Cache API store that downloaded model files are kept in. */
export const MODEL_CACHE = 'prime-models-v1';

let module = null;

/** Initialises the WebAssembly module once; `wasm` overrides where it is fetched from. */
export async function initialise(wasm) {
  module ??= init(wasm === undefined ? undefined : { module_or_path: wasm });
  return module;
}

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
async function explain(e, what) {
  const text = message(e);
  if (!(e instanceof WebAssembly.RuntimeError || /out of memory|allocation failed/i.test(text))) return e;
  const size = module ? (await module).memory.buffer.byteLength : 0;
  return new Error(`the runtime stopped ${what} (${text}) with ${megabytes(size)} of wasm memory in use; ` +
    'if that is near the browser\'s limit the tab ran out of memory: close other tabs, use a smaller model or one ' +
    'stored as f16 (prime convert --dtype f16), and reload');
}

// Downloads `url` with progress; `optional` files answer null on 404. A response shorter than
// its Content-Length is a truncated download and an error.
async function download(url, name, optional, { onProgress, cache: useCache }) {
  let cache = null;
  try {
    cache = useCache ? await caches.open(MODEL_CACHE) : null;
    const hit = cache && await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      onProgress({ file: name, loaded: bytes.length, total: bytes.length, cached: true });
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
    onProgress({ file: name, loaded, total });
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

// The bytes of one given file (a File or Blob, an ArrayBuffer, a typed array or a string).
async function readGiven(file, name, onProgress) {
  if (file == null) return null;
  let bytes;
  try {
    if (typeof file === 'string') bytes = new TextEncoder().encode(file);
    else if (file instanceof Uint8Array) bytes = file;
    else if (ArrayBuffer.isView(file)) bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
    else if (file instanceof ArrayBuffer) bytes = new Uint8Array(file);
    else bytes = new Uint8Array(await file.arrayBuffer());
  } catch (e) {
    throw new Error(`cannot read ${name}${file.name ? ` (${file.name})` : ''}: ${message(e)}`);
  }
  onProgress({ file: name, loaded: bytes.length, total: bytes.length });
  return bytes;
}

/**
 * Loads a model folder — `config.json`, `model.safetensors`, optional `tokenizer.json` and
 * `training.json` — from its URL, or from the files themselves
 * (`{config, weights, tokenizer?, training?}`). Resolves to a {@link Model}.
 */
export async function loadModel(source, options = {}) {
  const { backend = 'auto', maxBinding, onProgress = () => {}, cache = true, wasm } = options;
  await initialise(wasm);
  const files = typeof source === 'string' || source instanceof URL ? null : source;
  if (files && (files.config == null || files.weights == null)) {
    throw new Error('a model needs its config.json and model.safetensors (`config` and `weights`)');
  }
  const folder = files ? null : new URL(source, globalThis.location?.href);
  if (folder && !folder.pathname.endsWith('/')) folder.pathname += '/';
  const key = { 'config.json': 'config', 'model.safetensors': 'weights', 'tokenizer.json': 'tokenizer', 'training.json': 'training' };
  const get = (name, optional) => (files
    ? readGiven(files[key[name]], name, onProgress)
    : download(new URL(name, folder).href, name, optional, { onProgress, cache }));
  const config = new TextDecoder().decode(await get('config.json', false));
  check_config(config);
  const weights = await get('model.safetensors', false);
  const tokenizer = await get('tokenizer.json', true);
  // How the model was trained (`prime-train` writes it); optional.
  let training = null;
  try {
    const bytes = await get('training.json', true);
    training = bytes && JSON.parse(new TextDecoder().decode(bytes));
  } catch (_) {
    training = null;
  }
  onProgress({ file: 'initialising the device', loaded: 0, total: 0 });
  let engine;
  try {
    engine = await Engine.load(config, weights, tokenizer ?? undefined, backend, maxBinding ?? undefined);
  } catch (e) {
    const why = await explain(e, `loading ${megabytes(weights.length)} of weights`);
    throw new Error(`cannot load the model from ${folder ? folder.pathname : 'the given files'}: ${message(why)}`);
  }
  return new Model(engine, { ...JSON.parse(engine.info()), training });
}

// A task of its own between two steps, so that events queued meanwhile (an abort, a page's
// message) are handled: on the CPU backend a step's promise settles without leaving the
// microtask queue. A MessageChannel message is a task without setTimeout's 4 ms clamp.
const tick = new MessageChannel();
export const nextTask = () => new Promise((resolve) => {
  tick.port1.onmessage = () => resolve();
  tick.port2.postMessage(null);
});

/** A loaded model. */
export class Model {
  constructor(engine, info) {
    this.engine = engine;
    this.details = info;
  }

  /** The model, its device, how its tensors are cut, and how it was trained. */
  info() {
    return this.details;
  }

  /** Starts a generation of `request` (a GenerationRequest), to be stepped. */
  start(request) {
    return new Generation(this.engine.start(JSON.stringify(request)));
  }

  /**
   * Yields every step's record of a generation of `request` (the last carries `ending`);
   * `signal` (an AbortSignal) stops it between two steps.
   * @param {object} request
   * @param {{ signal?: AbortSignal }} [options]
   */
  async *steps(request, { signal } = {}) {
    const generation = this.start(request);
    while (!generation.done) {
      if (signal?.aborted) return;
      yield await generation.step();
      await nextTask();
    }
  }

  /**
   * Runs a generation of `request` to its end, calling `onStep` with each record; resolves to
   * the ending, or null if `signal` aborted it.
   * @param {object} request
   * @param {{ onStep?: (step: any) => void, signal?: AbortSignal }} [options]
   */
  async generate(request, { onStep, signal } = {}) {
    let last = null;
    for await (const record of this.steps(request, { signal })) {
      onStep?.(record);
      last = record;
    }
    return signal?.aborted ? null : last?.ending ?? null;
  }

  /** Diagnostics: the largest |Δ| between this model's logits and a golden `cases.safetensors`. */
  logitsDeviation(cases) {
    return this.engine.logits_deviation(cases);
  }

  /** Diagnostics: the WGSL kernels against their Burn-ops twins on this device (needs WebGPU). */
  async checkKernels() {
    return JSON.parse(await this.engine.check_kernels());
  }
}

/** A generation in progress. */
export class Generation {
  constructor(inner) {
    this.inner = inner;
    /** The trajectory header. */
    this.header = JSON.parse(inner.header());
  }

  /** Takes one step; resolves to its record (the last one carries `ending`). */
  async step() {
    try {
      return JSON.parse(await this.inner.step());
    } catch (e) {
      throw await explain(e, 'while generating');
    }
  }

  /** Whether the final step has been taken. */
  get done() {
    return this.inner.is_done();
  }
}

/** Reads a trajectory file's text with the runtime's reader: `{header, steps, ending}`. */
export async function parseTrajectory(text) {
  await initialise();
  return JSON.parse(parse_trajectory(text));
}
