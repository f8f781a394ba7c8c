// One model's panel: its worker (or a Replayer), its recorded steps, and how a step is drawn.

import { CellGrid } from './cells.js';
import { PixelGrid } from './pixels.js';
import { FromWorker, ToWorker } from './protocol.js';
import { Replayer } from './replay.js';
import { $, backend, byteSize, maxBinding, setText } from './util.js';
import { ServerWatcher } from './watch.js';

export class Panel {
  // `onChange` runs after every message the worker sends (the page redraws).
  constructor(spec, onChange) {
    this.spec = spec;
    this.onChange = onChange;
    this.steps = [];
    this.labels = new Map();
    this.header = null;
    this.info = null;
    this.phase = 'loading';
    // Built from the page's template; every string from outside (names from the URL, file
    // names, messages) goes in as text, never as markup.
    this.el = $('panel-template').content.firstElementChild.cloneNode(true);
    this.el.dataset.model = spec.name;
    this.el.querySelector('h2').textContent = spec.name;
    $('panels').append(this.el);
    this.q = (sel) => this.el.querySelector(sel);
    this.grid = new CellGrid(this.q('.cells'));
    this.worker = spec.trajectory
      ? new Replayer(spec.trajectory)
      : spec.server
        ? new ServerWatcher(spec.server)
        : new Worker('worker.js', { type: 'module' });
    this.worker.onmessage = ({ data }) => this.receive(data);
    this.worker.onerror = (e) => this.fail(`the worker failed to start: ${e.message ?? 'script error'}`);
    this.worker.postMessage({ type: ToWorker.LOAD, base: spec.path, files: spec.files, backend, maxBinding });
  }

  receive(msg) {
    switch (msg.type) {
      case FromWorker.PROGRESS: {
        if (msg.cached) (this.cached ??= []).push(msg.file);
        const bar = this.q('.bar');
        bar.style.width = msg.total ? `${(100 * msg.loaded) / msg.total}%` : '100%';
        const size = msg.total ? ` ${(msg.loaded / 1e6).toFixed(1)} / ${(msg.total / 1e6).toFixed(1)} MB` : '';
        this.q('.what').textContent = `${msg.file}${size}${msg.cached ? ' (from cache)' : ''}`;
        break;
      }
      case FromWorker.READY:
        this.info = msg.info;
        this.phase = 'ready';
        if (this.info.model.image) this.grid = new PixelGrid(this.q('.cells'), this.info.model.image);
        this.q('.progress').hidden = true;
        this.describeDevice();
        break;
      case FromWorker.STARTED:
        this.header = msg.header;
        this.phase = 'running';
        break;
      case FromWorker.STEP:
        for (const [id, text] of msg.view.labels) this.labels.set(id, text);
        this.steps.push({ ...msg.view, ms: msg.ms });
        break;
      case FromWorker.PAUSED:
        if (this.phase === 'running') this.phase = 'paused';
        break;
      case FromWorker.DONE:
        this.phase = 'done';
        break;
      case FromWorker.ABORTED:
        this.phase = 'ready';
        break;
      case FromWorker.GOLDEN:
        this.golden = msg.deviation;
        break;
      case FromWorker.KERNELS:
        this.kernels = msg.report;
        break;
      case FromWorker.ERROR:
        this.fail(msg.message);
        break;
    }
    this.el.dataset.phase = this.phase;
    this.onChange();
  }

  // Whether this panel holds an image model (before it loads: what models.json says).
  get isImage() {
    return this.info ? Boolean(this.info.model.image) : this.spec.kind === 'image';
  }

  fail(text) {
    this.phase = this.info ? 'ready' : 'failed';
    this.el.dataset.phase = this.phase;
    const box = this.q('.error');
    box.hidden = false;
    box.textContent = text;
    this.q('.progress').hidden = true;
    this.onChange();
  }

  describeDevice() {
    const { model, device } = this.info;
    const shape = `${model.model_class} · ℓ = ${model.subtokens}, b = ${model.base}, V = ${model.vocab_size}, L = ${model.length}`;
    if (device.replay || device.server) {
      const where = device.replay
        ? `replay of a trajectory sampled by the ${device.executor} executor on ${device.replay}`
        : `${(model.parameters / 1e6).toFixed(2)} M parameters · live from prime serve at ${device.server}, on ${device.name}`;
      this.q('.device').replaceChildren(Object.assign(document.createElement('span'), { textContent: `${shape} · ${where}` }));
      this.el.dataset.backend = device.replay ? 'replay' : 'server';
      return;
    }
    const limits = device.adapter
      ? device.adapter.limits
          .filter(([k]) => ['max_buffer_size', 'max_storage_buffer_binding_size'].includes(k))
          .map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(0)} MiB`).join(' · ')
      : '';
    const adapter = device.adapter;
    const software = adapter && adapter.device_type === 'Cpu';
    const where = device.backend === 'wgpu'
      ? `WebGPU (${adapter.name || adapter.driver || 'unnamed adapter'}, ${software ? 'a software adapter: expect CPU speed' : adapter.device_type})`
      : `CPU (burn-flex, ${device.cpu})`;
    this.q('.device').replaceChildren();
    const line = document.createElement('span');
    line.textContent = `${shape} · ${(model.parameters / 1e6).toFixed(2)} M parameters · ${where}`;
    this.q('.device').append(line);
    this.el.dataset.backend = device.backend;
    const { blocking } = this.info;
    const cut = blocking && (blocking.head_blocks > 1 || blocking.logits_blocks > 1)
      ? ` · cut to ${(blocking.limit / 2 ** 20).toFixed(blocking.limit < 2 ** 20 ? 2 : 0)} MiB buffers: output head in ${blocking.head_blocks} blocks, logits in ${blocking.logits_blocks} row blocks`
      : '';
    if (limits || cut) this.q('.device').append(Object.assign(document.createElement('small'), { textContent: ` · ${limits}${cut}` }));
    if (device.notice) {
      this.q('.device').append(Object.assign(document.createElement('div'), { className: 'notice', textContent: device.notice }));
    }
    const training = describeTraining(this.info.training);
    if (training) this.q('.device').append(Object.assign(document.createElement('div'), { className: 'training', textContent: training }));
  }

  start(request, delayMs) {
    this.steps = [];
    this.labels = new Map();
    this.q('.error').hidden = true;
    this.q('.final-text').textContent = '';
    // Running from now, not from the worker's answer: until then the panel would still read
    // 'done' from the previous run, and a script waiting for 'done' would read an empty run.
    this.phase = 'running';
    this.el.dataset.phase = this.phase;
    this.worker.postMessage({ type: ToWorker.START, request, delayMs });
  }

  viewAt(index) {
    if (!this.steps.length) return null;
    return this.steps[Math.min(index ?? this.steps.length - 1, this.steps.length - 1)];
  }

  render(index) {
    const view = this.viewAt(index);
    const stats = this.q('.stats');
    if (!view) {
      stats.textContent = '';
      this.grid.clear();
      return;
    }
    const l = this.info.model.subtokens;
    const timed = this.steps.filter((s) => s.network_called);
    const ms = this.steps.reduce((a, s) => a + s.ms, 0) / this.steps.length;
    const bytes = this.steps.reduce((a, s) => a + s.read_bytes, 0) / this.steps.length;
    const items = [
      ['step', `${view.step} / ${view.steps}${view.is_final ? ' (final)' : ''}`],
      ['NFE', view.nfe],
      ['idle steps', view.idle_steps],
      ['ms / step', ms.toFixed(1)],
      ['ms / network step', timed.length ? (timed.reduce((a, s) => a + s.ms, 0) / timed.length).toFixed(1) : '–'],
    ];
    // Read back from a GPU: nothing is, on the CPU backend or in a replay.
    if (this.info.device.backend === 'wgpu') items.push(['read back / step', byteSize(bytes)]);
    // A class-conditioned model: the class this sample is drawn for (the engine names it).
    if (this.header?.request.class) items.unshift(['class', this.header.request.class]);
    // Built once, then only changed values are written (each write costs style and layout).
    if (stats.children.length !== items.length) {
      stats.replaceChildren(...items.map(([k]) => {
        const item = document.createElement('span');
        item.dataset.stat = k;
        item.append(document.createElement('b'), ` ${k}`);
        return item;
      }));
    }
    items.forEach(([, v], n) => setText(stats.children[n].firstChild, String(v)));
    if (this.isImage) this.grid.draw(view.pixels ?? []);
    else this.grid.draw(this.cells(view), l, this.info.model.base ?? this.info.model.mask_id, view.revealed);
    setText(this.q('.final-text'), view.ending?.text ?? '');
    this.drawStrip(index ?? this.steps.length - 1);
  }

  // The cells of a record: each token's digit slots, what is known, its guess and label.
  cells(view) {
    const { subtokens: l, mask_id: mask, length } = this.info.model;
    const candidates = new Map(view.candidates.map((c) => [c.position, c]));
    const cells = [];
    for (let i = 0; i < length; i += 1) {
      const digits = view.state.slice(i * l, (i + 1) * l).map((d) => (d === mask ? null : d));
      const known = digits.filter((d) => d != null).length;
      const value = view.guesses[i] ?? null;
      const token = known === l ? value : null;
      const guess = known < l ? value : null;
      const c = candidates.get(i);
      cells.push({
        digits, known, token, guess,
        fixed: this.header?.fixed[i] ?? false,
        label: (token ?? guess) != null ? this.labels.get(token ?? guess) : null,
        consistent: c && { count: c.count, top: c.top.map(([t, p]) => ({ token: t, p, text: this.labels.get(t) ?? `#${t}` })) },
      });
    }
    return cells;
  }

  // This panel's run in the trajectory format: header, records, ending (JSON Lines).
  trajectory() {
    const last = this.steps[this.steps.length - 1];
    const lines = [JSON.stringify(this.header)];
    for (const { ms, ending, ...record } of this.steps) lines.push(JSON.stringify(record));
    if (last?.ending) lines.push(JSON.stringify(last.ending));
    return lines.join('\n') + '\n';
  }

  drawStrip(current) {
    const canvas = this.q('.strip');
    const total = Math.max(this.steps[0].steps + 1, 1);
    if (canvas.width !== total) canvas.width = total; // a resize reallocates the canvas
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    this.steps.forEach((s, i) => {
      g.fillStyle = s.idle ? '#c8c8c8' : '#2f6fd6';
      g.fillRect(i, s.idle ? 5 : 0, 1, s.idle ? 5 : 10);
    });
    g.fillStyle = '#e0462f';
    g.fillRect(Math.min(current, this.steps.length - 1), 0, 1, 10);
  }
}

// What a model folder's training.json says of its training, in one line (null without one).
function describeTraining(t) {
  // A model trained in legs (`prime-train train --init`) records the earlier ones in turn.
  const legs = [];
  for (let leg = t, depth = 0; leg && typeof leg === 'object' && depth < 8; leg = leg.initialised_from?.training, depth++) {
    const text = describeLeg(leg);
    if (text) legs.unshift(text);
  }
  return legs.length ? `How it was trained: ${legs.join(', then ')}` : null;
}

// One training run of a training.json: steps (or a snapshot's step), tokens, time.
function describeLeg(t) {
  const millions = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} M`;
  const parts = [];
  if (Number.isFinite(t.steps)) parts.push(`trained ${t.steps.toLocaleString('en')} steps`);
  else if (Number.isFinite(t.snapshot_step)) parts.push(`a snapshot at step ${t.snapshot_step.toLocaleString('en')}`);
  if (Number.isFinite(t.training_tokens)) {
    const corpus = Number.isFinite(t.corpus_tokens) ? ` of a ${millions(t.corpus_tokens)}-token corpus` : '';
    parts.push(`on ${millions(t.training_tokens)} tokens${corpus}`);
  }
  if (Number.isFinite(t.training_seconds)) {
    parts.push(`in ${(t.training_seconds / 60).toFixed(0)} minutes${t.device ? ` on ${t.device}` : ''}`);
  }
  return parts.length ? parts.join(' ') : null;
}
