// The messages between the page and a model's worker (worker.js), defined once: the page sends
// `ToWorker` messages, the worker answers with `FromWorker` ones. A Replayer (replay.js) answers
// the same messages for a recorded trajectory, so a panel cannot tell the two apart.

/** The Cache API store the workers keep downloaded model files in ("Clear model cache" empties
 * it): the package API's. */
export { MODEL_CACHE } from './pkg/index.js';

/** What the page asks of a worker. */
export const ToWorker = Object.freeze({
  LOAD: 'load', // {base, files, backend, maxBinding}: download (or read) and load a model folder
  START: 'start', // {request, delayMs}: start a generation (prime-core's GenerationRequest)
  PAUSE: 'pause',
  RESUME: 'resume',
  STEP: 'step', // one step while paused
  ABORT: 'abort',
  SPEED: 'speed', // {delayMs}: the pause between steps
  PARSE: 'parse', // {text}: read a trajectory file with prime-core's reader
  GOLDEN: 'golden', // {url}: logits against the official golden cases (browser tests)
  KERNELS: 'kernels', // the WGSL kernels against their twins (browser tests)
});

/** What a worker reports. */
export const FromWorker = Object.freeze({
  PROGRESS: 'progress', // {file, loaded, total, cached}
  READY: 'ready', // {info}: the model, the device, how it was trained
  STARTED: 'started', // {header}: the trajectory header
  STEP: 'step', // {view, ms}: one trajectory record (with `ending` on the last)
  PAUSED: 'paused',
  DONE: 'done',
  ABORTED: 'aborted',
  PARSED: 'parsed', // {trajectory}: {header, steps, ending}
  GOLDEN: 'golden', // {deviation}
  KERNELS: 'kernels', // {report}
  ERROR: 'error', // {message}
});
