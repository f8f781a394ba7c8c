// The Web Worker that owns one model: it loads the model folder through prime-web's package
// API (pkg/index.js: downloaded with progress and kept in the Cache API, or read from local
// files; WebGPU, or the CPU fallback), and steps generations, posting every step's trajectory
// record to the page.
// Sampling itself happens in Rust: on WebGPU the sampler's kernels run on the GPU and only a
// few numbers per step are read.

import { loadModel, nextTask, parseTrajectory } from './pkg/index.js';
import { FromWorker, ToWorker } from './protocol.js';

let model = null;
let generation = null;
let running = false;
let delayMs = 0;
let stepping = null;

const post = (type, body = {}) => self.postMessage({ type, ...body });
const message = (e) => (e && e.message) || String(e);

// The model folder from a URL (downloaded with progress, cached) or from local files.
async function load({ base, files, backend, maxBinding }) {
  const source = files
    ? { config: files['config.json'], weights: files['model.safetensors'], tokenizer: files['tokenizer.json'] }
    : new URL(base, self.location.href).href;
  model = await loadModel(source, { backend, maxBinding, onProgress: (p) => post(FromWorker.PROGRESS, p) });
  return model.info();
}

// One step of the current generation; a step that finishes after an abort or a new start is
// dropped.
async function stepOnce() {
  const current = generation;
  const started = performance.now();
  const view = await current.step();
  if (current !== generation) return;
  post(FromWorker.STEP, { view, ms: performance.now() - started });
  if (current.done) {
    running = false;
    post(FromWorker.DONE);
  }
}

// Only the newest loop runs: a resume during an older loop's pause between steps ends that one.
// Between two steps the loop waits for a task of its own (`nextTask`), so that the page's
// messages (Pause, Step, Abort) queued meanwhile are handled.
let loopId = 0;

async function runLoop() {
  const id = ++loopId;
  while (id === loopId && running && generation && !generation.done) {
    stepping = stepOnce();
    await stepping;
    stepping = null;
    await (delayMs > 0 ? new Promise((r) => setTimeout(r, delayMs)) : nextTask());
  }
}

function fail(e) {
  running = false;
  post(FromWorker.ERROR, { message: message(e) });
}

self.onmessage = async ({ data }) => {
  try {
    switch (data.type) {
      case ToWorker.LOAD:
        post(FromWorker.READY, { info: await load(data) });
        break;
      case ToWorker.START:
        if (stepping) await stepping.catch(() => {});
        generation = model.start(data.request);
        delayMs = data.delayMs ?? 0;
        running = true;
        post(FromWorker.STARTED, { header: generation.header });
        runLoop().catch(fail);
        break;
      case ToWorker.PAUSE:
        running = false;
        if (stepping) await stepping.catch(() => {});
        post(FromWorker.PAUSED);
        break;
      case ToWorker.RESUME:
        if (generation && !generation.done && !running) {
          running = true;
          runLoop().catch(fail);
        }
        break;
      case ToWorker.STEP:
        if (generation && !generation.done && !running && !stepping) {
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
        post(FromWorker.GOLDEN, { deviation: await model.logitsDeviation(cases) });
        break;
      }
      case ToWorker.PARSE:
        post(FromWorker.PARSED, { trajectory: await parseTrajectory(data.text) });
        break;
      case ToWorker.KERNELS:
        post(FromWorker.KERNELS, { report: await model.checkKernels() });
        break;
      default:
        throw new Error(`unknown message ${data.type}`);
    }
  } catch (e) {
    stepping = null;
    fail(e);
  }
};
