// Replaying a trajectory file: read by prime-core's reader (wasm, in a worker), then played
// through the worker protocol.

import { FromWorker, ToWorker } from './protocol.js';

// A recorded trajectory played through the worker protocol: the panel and the controls work
// on it as on a live run.
export class Replayer {
  constructor(trajectory) {
    this.t = trajectory;
    this.next = 0;
    this.running = false;
    this.delayMs = 0;
    this.loopId = 0;
  }

  emit(type, body = {}) {
    setTimeout(() => this.onmessage({ data: { type, ...body } }), 0);
  }

  // The records that can be shown: all of a whole trajectory (a live one holds its newest
  // record back until the next one or the ending arrives, so the last carries the ending).
  get available() {
    return this.t.steps.length;
  }

  emitStep() {
    const { steps, ending } = this.t;
    const record = { ...steps[this.next] };
    this.next += 1;
    const last = ending != null && this.next === steps.length;
    if (last) record.ending = ending;
    this.emit(FromWorker.STEP, { view: record, ms: record.ms ?? 0 });
    if (last) {
      this.running = false;
      this.emit(FromWorker.DONE);
    }
  }

  // Resolves when more records may be available (never, for a whole trajectory).
  arrival() {
    return new Promise(() => {});
  }

  async loop() {
    const id = ++this.loopId;
    while (id === this.loopId && this.running) {
      if (this.next < this.available) {
        this.emitStep();
        await new Promise((r) => setTimeout(r, this.delayMs));
      } else if (this.t.ending != null && this.next >= this.t.steps.length) {
        break;
      } else {
        await this.arrival();
      }
    }
  }

  postMessage(msg) {
    const { header } = this.t;
    switch (msg.type) {
      case ToWorker.LOAD:
        this.emit(FromWorker.READY, { info: { model: header.model, device: { replay: header.device, executor: header.executor } } });
        break;
      case ToWorker.START:
        this.next = 0;
        this.delayMs = msg.delayMs ?? 0;
        this.running = true;
        this.emit(FromWorker.STARTED, { header });
        this.loop();
        break;
      case ToWorker.PAUSE:
        this.running = false;
        this.emit(FromWorker.PAUSED);
        break;
      case ToWorker.RESUME:
        if (!this.running && (this.next < this.t.steps.length || this.t.ending == null)) {
          this.running = true;
          this.loop();
        }
        break;
      case ToWorker.STEP:
        if (!this.running && this.next < this.available) {
          this.emitStep();
          this.emit(FromWorker.PAUSED);
        }
        break;
      case ToWorker.ABORT:
        this.running = false;
        this.emit(FromWorker.ABORTED);
        break;
      case ToWorker.SPEED:
        this.delayMs = msg.delayMs;
        break;
      default:
        break;
    }
  }

  terminate() {
    this.running = false;
  }
}

// Reads a trajectory file with prime-core's reader, in a worker of its own (the reader is in the
// wasm module): the format and version, and every record against the header's model, so that
// nothing is drawn from a record that does not fit. Resolves to {header, steps, ending}.
export function readTrajectory(text) {
  return new Promise((resolve, reject) => {
    const worker = new Worker('worker.js', { type: 'module' });
    worker.onmessage = ({ data }) => {
      worker.terminate();
      if (data.type === FromWorker.PARSED) resolve(data.trajectory);
      else reject(new Error(data.message ?? `unexpected message ${data.type}`));
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(`the worker failed to start: ${e.message ?? 'script error'}`));
    };
    worker.postMessage({ type: ToWorker.PARSE, text });
  });
}
