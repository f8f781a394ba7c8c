// Watching a `prime serve` run live: the page's request goes to the server's /v1/generate, and
// the server-sent records (the trajectory format) play through the worker protocol as they
// arrive, with the Replayer's controls (pause, step, speed).

import { FromWorker, ToWorker } from './protocol.js';
import { Replayer } from './replay.js';

// Why a record cannot be drawn on `model` (null if it can): the shape the panel indexes.
function misfit(record, model) {
  const slots = model.length * model.subtokens;
  if (!Array.isArray(record.state) || record.state.length !== slots) return `a step without its ${slots} digit slots`;
  if (!Array.isArray(record.guesses) || record.guesses.length !== model.length) return 'a step without its guesses';
  if (!Array.isArray(record.candidates) || !Array.isArray(record.labels) || !Array.isArray(record.revealed)) {
    return 'a step without its candidates, labels or reveals';
  }
  if (model.image && (!Array.isArray(record.pixels) || record.pixels.length !== model.length)) return 'an image step without its pixels';
  return null;
}

// The events of a server-sent event stream, as they arrive: yields {event, data}.
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const field = (name) => block.split('\n').filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).replace(/^ /, '')).join('\n');
      if (field('event')) yield { event: field('event'), data: field('data') };
    }
  }
}

// The error message of a refused request: the server's `{"error": …}`, or the status.
async function refusal(response) {
  const text = await response.text().catch(() => '');
  try {
    return JSON.parse(text).error ?? text;
  } catch {
    return text || `HTTP ${response.status}`;
  }
}

export class ServerWatcher extends Replayer {
  constructor(url) {
    super({ header: null, steps: [], ending: null });
    this.url = url.replace(/\/+$/, '');
    this.controller = null;
    this.wake = null;
    this.model = null;
  }

  get available() {
    return this.t.ending == null ? Math.max(0, this.t.steps.length - 1) : this.t.steps.length;
  }

  arrival() {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  arrived() {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  fail(message) {
    this.running = false;
    this.arrived();
    this.emit(FromWorker.ERROR, { message });
  }

  async load() {
    try {
      const response = await fetch(`${this.url}/v1/models`);
      if (!response.ok) throw new Error(await refusal(response));
      const info = await response.json();
      this.model = info.model;
      this.emit(FromWorker.READY, { info: { model: info.model, device: { server: this.url, name: info.device } } });
    } catch (e) {
      this.emit(FromWorker.ERROR, { message: `cannot reach prime serve at ${this.url}: ${e.message}` });
    }
  }

  async watch(request) {
    const controller = new AbortController();
    this.controller = controller;
    let last = performance.now();
    try {
      const response = await fetch(`${this.url}/v1/generate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify(request),
        signal: controller.signal,
      });
      if (!response.ok) throw new Error(`the server refused the request: ${await refusal(response)}`);
      for await (const { event, data } of serverEvents(response.body)) {
        if (controller.signal.aborted) return;
        const record = JSON.parse(data);
        if (event === 'error') throw new Error(`the server stopped the run: ${record.error}`);
        if (event === 'header') {
          this.t.header = record;
          this.emit(FromWorker.STARTED, { header: record });
        } else if (event === 'step') {
          const why = misfit(record, this.model);
          if (why) throw new Error(`the server sent ${why}`);
          const now = performance.now();
          this.t.steps.push({ ...record, ms: now - last });
          last = now;
        } else if (event === 'ending') {
          this.t.ending = record;
        }
        this.arrived();
      }
      if (this.t.ending == null) throw new Error('the server ended the stream before the run ended');
    } catch (e) {
      if (!controller.signal.aborted) this.fail(e.message);
    }
  }

  postMessage(msg) {
    switch (msg.type) {
      case ToWorker.LOAD:
        this.load();
        break;
      case ToWorker.START:
        this.controller?.abort();
        this.t = { header: null, steps: [], ending: null };
        this.next = 0;
        this.delayMs = msg.delayMs ?? 0;
        this.running = true;
        this.watch(msg.request);
        this.loop();
        break;
      case ToWorker.ABORT:
        // The server sees the connection close, drops the run and frees its place.
        this.controller?.abort();
        this.arrived();
        super.postMessage(msg);
        break;
      default:
        super.postMessage(msg);
    }
  }

  terminate() {
    this.controller?.abort();
    super.terminate();
    this.arrived();
  }
}
