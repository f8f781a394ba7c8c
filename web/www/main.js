// The page: one panel (and one Web Worker) per model; it renders the trajectory records the
// workers post (the `prime-trajectory` format of prime-core, also written by `prime generate
// --trajectory`) and never samples anything itself. An opened trajectory file replays through
// the same panel and controls, with a Replayer in place of the worker.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const backend = params.get('backend') ?? 'auto';
// ?binding=BYTES caps each GPU buffer below the adapter's limit (tensors are cut to fit).
const maxBinding = params.get('binding') ? Number(params.get('binding')) : undefined;
const panels = [];
let shown = null; // step index the timeline shows; null follows the newest step
let allSpecs = []; // every model models.json lists
let hovered = null; // {panel, index} of the cell under the pointer

// Writes an element's text only when it changes (an equal write still invalidates layout).
const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};
const visible = (text) => (text ?? '').replace(/\n/g, '⏎');
const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)}%`;

function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').className = kind;
}

class Panel {
  constructor(spec) {
    this.spec = spec;
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
    this.worker = spec.trajectory ? new Replayer(spec.trajectory) : new Worker('worker.js', { type: 'module' });
    this.worker.onmessage = ({ data }) => this.receive(data);
    this.worker.onerror = (e) => this.fail(`the worker failed to start: ${e.message ?? 'script error'}`);
    this.worker.postMessage({ type: 'load', base: spec.path, files: spec.files, backend, maxBinding });
  }

  receive(msg) {
    switch (msg.type) {
      case 'progress': {
        if (msg.cached) (this.cached ??= []).push(msg.file);
        const bar = this.q('.bar');
        bar.style.width = msg.total ? `${(100 * msg.loaded) / msg.total}%` : '100%';
        const size = msg.total ? ` ${(msg.loaded / 1e6).toFixed(1)} / ${(msg.total / 1e6).toFixed(1)} MB` : '';
        this.q('.what').textContent = `${msg.file}${size}${msg.cached ? ' (from cache)' : ''}`;
        break;
      }
      case 'ready':
        this.info = msg.info;
        this.phase = 'ready';
        if (this.info.model.image) this.grid = new PixelGrid(this.q('.cells'), this.info.model.image);
        this.q('.progress').hidden = true;
        this.describeDevice();
        break;
      case 'started':
        this.header = msg.header;
        this.phase = 'running';
        break;
      case 'step':
        for (const [id, text] of msg.view.labels) this.labels.set(id, text);
        this.steps.push({ ...msg.view, ms: msg.ms });
        break;
      case 'paused':
        if (this.phase === 'running') this.phase = 'paused';
        break;
      case 'done':
        this.phase = 'done';
        break;
      case 'aborted':
        this.phase = 'ready';
        break;
      case 'golden':
        this.golden = msg.deviation;
        break;
      case 'kernels':
        this.kernels = msg.report;
        break;
      case 'error':
        this.fail(msg.message);
        break;
    }
    this.el.dataset.phase = this.phase;
    refresh();
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
    refresh();
  }

  describeDevice() {
    const { model, device } = this.info;
    if (device.replay) {
      const line = `${model.model_class} · ℓ = ${model.subtokens}, b = ${model.base}, V = ${model.vocab_size}, ` +
        `L = ${model.length} · replay of a trajectory sampled by the ${device.executor} executor on ${device.replay}`;
      this.q('.device').replaceChildren(Object.assign(document.createElement('span'), { textContent: line }));
      this.el.dataset.backend = 'replay';
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
      : 'CPU (burn-flex)';
    this.q('.device').replaceChildren();
    const line = document.createElement('span');
    line.textContent = `${model.model_class} · ℓ = ${model.subtokens}, b = ${model.base}, V = ${model.vocab_size}, ` +
      `L = ${model.length} · ${(model.parameters / 1e6).toFixed(2)} M parameters · ${where}`;
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
    this.worker.postMessage({ type: 'start', request, delayMs });
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

// The cells of a record drawn on a canvas: each token a box with its ℓ digit slots (a masked
// slot grey with "?", a slot revealed at this step outlined in red) and its label or current
// guess. Only the rows in or near the viewport are painted (scrolling paints the others), the
// digit slots are copied from a pre-drawn atlas, and the rest is batched by font and colour:
// the DOM cells this replaces spent ~40 ms a step at L = 1024, ℓ = 4, most of it in
// Chromium's style and layout of the changed elements.
const CELL = { height: 34, gap: 3, slotHeight: 14, slotGap: 2, minWidth: 52 };
const MARGIN_PX = 120; // painted beyond the viewport, so a short scroll shows painted rows
const ATLAS_MAX_BASE = 256; // larger bases (MDLM: b = V) draw their digits as text
const DIGIT_FONT = '11px ui-monospace, monospace';
const LABEL_FONT = '12px system-ui, sans-serif';
const GUESS_FONT = 'italic 12px system-ui, sans-serif';
const COLORS = {
  background: '#fff', text: '#1d1d1f', masked: '#aaa', maskSlot: '#e4e4e4', slot: '#fff', fresh: '#e0462f', guess: '#888',
  empty: ['#f1f1f1', '#e0e0e0'], fixed: ['#e7f3e7', '#9ccf9c'], border: '#c9d6ee',
};

// A cell's fill: white mixed with blue by the share of its digits revealed (up to 28 %).
function fillFor(frac) {
  const mix = (c) => Math.round(255 + (c - 255) * frac * 0.28);
  return `rgb(${mix(0x2f)}, ${mix(0x6f)}, ${mix(0xd6)})`;
}

// Paints one digit slot (value null: masked) with its top-left corner at (x, y).
function paintSlot(g, x, y, width, value, fresh) {
  g.fillStyle = value == null ? COLORS.maskSlot : COLORS.slot;
  g.fillRect(x, y, width, CELL.slotHeight);
  if (fresh) {
    g.strokeStyle = COLORS.fresh;
    g.lineWidth = 2;
    g.strokeRect(x, y, width, CELL.slotHeight);
  }
  g.fillStyle = value == null ? COLORS.masked : COLORS.text;
  g.fillText(value == null ? '?' : String(value), x + width / 2, y + CELL.slotHeight / 2);
}

function textStyle(g, font) {
  g.font = font;
  g.textAlign = 'center';
  g.textBaseline = 'middle';
}

class CellGrid {
  constructor(canvas) {
    this.canvas = canvas;
    // Opaque: nothing of the page shows through, which spares the compositor a blend.
    this.g = canvas.getContext('2d', { alpha: false });
    this.cells = []; // what the last step drawn holds, for the tooltip and for scripted checks
    this.fresh = new Set();
    this.geometry = null;
    this.painted = null; // [first row, end row) painted
  }

  clear() {
    this.cells = [];
    this.canvas.width = 0;
    this.canvas.height = 0;
    this.canvas.style.height = '0';
    this.geometry = null;
    this.painted = null;
  }

  // Cell and slot sizes for ℓ slots wide enough for the largest digit (b − 1).
  measure(count, l, base) {
    const g = this.g;
    g.font = DIGIT_FONT;
    const chars = Math.max(String(Math.max(base - 1, 0)).length, 1);
    const slotWidth = Math.ceil(g.measureText('0'.repeat(chars)).width) + 4;
    const slotsWidth = l * slotWidth + (l - 1) * CELL.slotGap;
    const least = Math.max(slotsWidth + 8, CELL.minWidth);
    const avail = this.canvas.clientWidth || this.canvas.parentElement.clientWidth || 560;
    const cols = Math.max(1, Math.floor((avail + CELL.gap) / (least + CELL.gap)));
    // The cells share out the row's leftover width, so the grid fills its panel.
    const width = Math.max(least, Math.floor((avail + CELL.gap) / cols) - CELL.gap);
    const rows = Math.ceil(count / cols);
    return { count, l, base, slotWidth, slotsWidth, width, cols, avail, height: rows * (CELL.height + CELL.gap) };
  }

  // Sizes the canvas (which clears it) and draws the digit atlas only when the geometry changes.
  prepare(count, l, base) {
    const m = this.measure(count, l, base);
    const dpr = window.devicePixelRatio || 1;
    const old = this.geometry;
    if (old && ['count', 'l', 'base', 'avail'].every((k) => old[k] === m[k]) && old.dpr === dpr) return;
    this.canvas.width = Math.round(m.avail * dpr);
    this.canvas.height = Math.round(m.height * dpr);
    this.canvas.style.height = `${m.height}px`;
    this.g.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.geometry = { ...m, dpr };
    this.atlas = base <= ATLAS_MAX_BASE ? this.drawAtlas(base, m.slotWidth, dpr) : null;
    this.painted = null;
  }

  // Every slot image, pre-drawn: value v (b: masked) in column v, fresh ones in the second row;
  // each with a 1 px border for the outline.
  drawAtlas(base, slotWidth, dpr) {
    const atlas = document.createElement('canvas');
    const [w, h] = [slotWidth + 2, CELL.slotHeight + 2];
    atlas.width = Math.ceil((base + 1) * w * dpr);
    atlas.height = Math.ceil(2 * h * dpr);
    const g = atlas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    textStyle(g, DIGIT_FONT);
    for (let v = 0; v <= base; v += 1) {
      for (const fresh of [false, true]) paintSlot(g, v * w + 1, (fresh ? h : 0) + 1, slotWidth, v === base ? null : v, fresh);
    }
    const entry = { image: atlas, w, h, base };
    // Copies from an ImageBitmap (immutable) are cheaper than from a canvas, which Chromium
    // snapshots (measured here: a step's draw 13–16 ms from the canvas, 10–14 ms from the
    // bitmap). Until the bitmap exists, the canvas serves.
    createImageBitmap(atlas).then((bitmap) => {
      if (this.atlas === entry) entry.image = bitmap;
    }, () => {});
    return entry;
  }

  origin(i) {
    const { cols, width } = this.geometry;
    return [(i % cols) * (width + CELL.gap), Math.floor(i / cols) * (CELL.height + CELL.gap)];
  }

  slotLeft(x, j) {
    const { width, slotWidth, slotsWidth } = this.geometry;
    return x + Math.floor((width - slotsWidth) / 2) + j * (slotWidth + CELL.slotGap);
  }

  // Digit slot j of cell i on the canvas (CSS pixels): for scripted checks of what was painted.
  slotBox(i, j) {
    const [x, y] = this.origin(i);
    return { x: this.slotLeft(x, j), y: y + 3, width: this.geometry.slotWidth, height: CELL.slotHeight };
  }

  // Draws a step: its cells, with the slots in `revealed` outlined.
  draw(cells, l, base, revealed) {
    this.prepare(cells.length, l, base);
    this.cells = cells;
    this.fresh = new Set(revealed);
    this.painted = null;
    this.paintVisible();
  }

  // Rows [first, end) in or within MARGIN_PX of the viewport.
  visibleRows() {
    const r = this.canvas.getBoundingClientRect();
    const row = CELL.height + CELL.gap;
    const top = Math.max(0, -r.top - MARGIN_PX);
    const bottom = Math.min(this.geometry.height, window.innerHeight - r.top + MARGIN_PX);
    return bottom <= top ? [0, 0] : [Math.floor(top / row), Math.ceil(bottom / row)];
  }

  // Once the panel is idle, paints the rows still unpainted, so that a full-page capture or a
  // print shows every cell (while steps come in, only the rows near the viewport are painted).
  paintRestWhenIdle() {
    if (this.restPending || !this.geometry) return;
    this.restPending = true;
    const later = window.requestIdleCallback ?? ((f) => setTimeout(f, 50));
    later(() => {
      this.restPending = false;
      this.paintAll();
    }, { timeout: 500 });
  }

  // Paints every row unless all are painted already.
  paintAll() {
    if (!this.geometry) return;
    const rows = Math.ceil(this.cells.length / this.geometry.cols);
    if (this.painted && this.painted[0] === 0 && this.painted[1] >= rows) return;
    const g = this.g;
    g.fillStyle = COLORS.background;
    g.fillRect(0, 0, this.geometry.avail, this.geometry.height);
    this.paint(g, 0, this.cells.length);
    this.painted = [0, rows];
  }

  // Paints the visible rows unless they are painted already (after a scroll, a resize).
  paintVisible() {
    if (!this.geometry) return;
    const [first, end] = this.visibleRows();
    if (this.painted && first >= this.painted[0] && end <= this.painted[1]) return;
    const g = this.g;
    g.fillStyle = COLORS.background;
    g.fillRect(0, 0, this.geometry.avail, this.geometry.height);
    const { cols } = this.geometry;
    this.paint(g, Math.min(first * cols, this.cells.length), Math.min(end * cols, this.cells.length));
    this.painted = [first, end];
  }

  paint(g, start, end) {
    const { width, slotWidth, l } = this.geometry;
    const range = (f) => {
      for (let i = start; i < end; i += 1) f(this.cells[i], i, ...this.origin(i));
    };
    const fills = new Map();
    const fillOf = (known) => fills.get(known) ?? fills.set(known, fillFor(known / l)).get(known);
    // Boxes: rectangles only.
    range((cell, i, x, y) => {
      const [fill, border] = cell.fixed ? COLORS.fixed : cell.known === 0 ? COLORS.empty : [fillOf(cell.known), COLORS.border];
      g.fillStyle = border;
      g.fillRect(x, y, width, CELL.height);
      g.fillStyle = fill;
      g.fillRect(x + 1, y + 1, width - 2, CELL.height - 2);
    });
    // Digit slots: copied from the atlas, or drawn where the base is too large for one.
    textStyle(g, DIGIT_FONT);
    const a = this.atlas;
    const dpr = this.geometry.dpr;
    range((cell, i, x, y) => {
      cell.digits.forEach((d, j) => {
        const fresh = this.fresh.has(i * l + j);
        const sx = this.slotLeft(x, j);
        if (a) {
          const v = d ?? a.base;
          g.drawImage(a.image, v * a.w * dpr, (fresh ? a.h : 0) * dpr, a.w * dpr, a.h * dpr, sx - 1, y + 2, a.w, a.h);
        } else {
          paintSlot(g, sx, y + 3, slotWidth, d, fresh);
        }
      });
    });
    // Labels, by font, cut to what fits (≈ 6.5 px a character; a text's maxWidth would scale it
    // on a slower path).
    const chars = Math.max(3, Math.floor((width - 6) / 6.5));
    for (const guessing of [false, true]) {
      textStyle(g, guessing ? GUESS_FONT : LABEL_FONT);
      g.fillStyle = guessing ? COLORS.guess : COLORS.text;
      range((cell, i, x, y) => {
        if (!cell.label || (cell.token == null && cell.guess != null) !== guessing) return;
        const text = visible(cell.label);
        g.fillText(text.length > chars ? `${text.slice(0, chars - 1)}…` : text, x + width / 2, y + 25);
      });
    }
  }

  // The cell under a point (client coordinates), or null.
  indexAt(clientX, clientY) {
    if (!this.geometry) return null;
    const r = this.canvas.getBoundingClientRect();
    const { cols, width, count } = this.geometry;
    const [x, y] = [clientX - r.left, clientY - r.top];
    const col = Math.floor(x / (width + CELL.gap));
    const row = Math.floor(y / (CELL.height + CELL.gap));
    const i = row * cols + col;
    const inside = x >= 0 && col < cols && x - col * (width + CELL.gap) < width && y >= 0
      && y - row * (CELL.height + CELL.gap) < CELL.height;
    return inside && i < count ? i : null;
  }

  // A cell's box in client coordinates.
  rectOf(i) {
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = this.origin(i);
    return { left: r.left + x, top: r.top + y, right: r.left + x + this.geometry.width, bottom: r.top + y + CELL.height };
  }
}

// An image model's step on a canvas: each pixel a square, drawn from the record's `pixels`
// (prime-core's image::Pixel, as the CLI's PNG and GIF draw them): masked blue, known at its
// grey level, partly revealed at the mean of the levels it can still become with an orange dot.
const PIXEL = { scale: 16, mask: '#3b5bdb', marker: '#ff8c00' };

// Paints `pixels` (null: masked, a number: a level, an object: partly revealed) of a
// width-wide image onto `g` at `scale` CSS pixels per pixel.
function paintPixels(g, pixels, width, scale) {
  const dot = Math.max(2, Math.round(scale / 4));
  const from = Math.floor((scale - dot) / 2);
  pixels.forEach((p, i) => {
    const [x, y] = [(i % width) * scale, Math.floor(i / width) * scale];
    const level = p == null ? null : typeof p === 'number' ? p : Math.round(p.level);
    g.fillStyle = level == null ? PIXEL.mask : `rgb(${level}, ${level}, ${level})`;
    g.fillRect(x, y, scale, scale);
    if (p != null && typeof p === 'object') {
      g.fillStyle = PIXEL.marker;
      g.fillRect(x + from, y + from, dot, dot);
    }
  });
}

// Sizes a canvas to a width × height image at `scale` (device pixels follow the ratio).
function sizePixelCanvas(canvas, g, { width, height }, scale) {
  const dpr = window.devicePixelRatio || 1;
  const [w, h] = [width * scale, height * scale];
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return dpr;
}

class PixelGrid {
  constructor(canvas, shape) {
    this.canvas = canvas;
    this.shape = shape;
    this.g = canvas.getContext('2d', { alpha: false });
    this.pixels = []; // what the last step drawn holds, for the tooltip and for scripted checks
    this.geometry = null;
  }

  clear() {
    this.pixels = [];
    this.canvas.width = 0;
    this.canvas.height = 0;
    this.canvas.style.height = '0';
    this.geometry = null;
  }

  draw(pixels) {
    this.geometry = { dpr: sizePixelCanvas(this.canvas, this.g, this.shape, PIXEL.scale) };
    this.pixels = pixels;
    paintPixels(this.g, pixels, this.shape.width, PIXEL.scale);
  }

  paintVisible() {} // the whole image is painted at each draw

  paintRestWhenIdle() {}

  paintAll() {}

  // The pixel under a point (client coordinates), or null.
  indexAt(clientX, clientY) {
    if (!this.geometry) return null;
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = [Math.floor((clientX - r.left) / PIXEL.scale), Math.floor((clientY - r.top) / PIXEL.scale)];
    const { width, height } = this.shape;
    return x >= 0 && y >= 0 && x < width && y < height ? y * width + x : null;
  }

  // The top-left corner of pixel i's square on the canvas (CSS pixels).
  origin(i) {
    return [(i % this.shape.width) * PIXEL.scale, Math.floor(i / this.shape.width) * PIXEL.scale];
  }

  // Pixel i's square in client coordinates.
  rectOf(i) {
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = this.origin(i);
    return { left: r.left + x, top: r.top + y, right: r.left + x + PIXEL.scale, bottom: r.top + y + PIXEL.scale };
  }

  // The colour painted at (dx, dy) CSS pixels inside pixel i's square: for scripted checks.
  colourAt(i, dx, dy) {
    const { dpr } = this.geometry;
    const [x, y] = this.origin(i);
    const d = this.g.getImageData(Math.round((x + dx) * dpr), Math.round((y + dy) * dpr), 1, 1).data;
    return [d[0], d[1], d[2]];
  }
}

// The tooltip of pixel i of an image panel: its digit slots, the grey levels it can still
// become (from the record's pixel view), the most likely of them and the model's guess.
function pixelTooltip(panel, view, i) {
  const { subtokens: l, mask_id: mask, image } = panel.info.model;
  const pixel = view.pixels?.[i];
  if (pixel === undefined) return null;
  const digits = view.state.slice(i * l, (i + 1) * l).map((d) => (d === mask ? '?' : String(d)));
  const known = digits.filter((d) => d !== '?').length;
  const fixed = panel.header?.fixed[i] ?? false;
  const lines = [`pixel (${i % image.width}, ${Math.floor(i / image.width)}) · digits [${digits.join(', ')}] · ${known} of ${l} revealed`];
  if (pixel == null) lines.push('masked: all 256 grey levels possible');
  else if (typeof pixel === 'number') lines.push(`grey level ${pixel}${fixed ? ' (pinned)' : ''}`);
  else {
    lines.push(`${pixel.count} grey levels possible, ${pixel.lowest}–${pixel.highest}; drawn at their mean ${pixel.level.toFixed(1)}`);
    const c = view.candidates.find((x) => x.position === i);
    if (c) lines.push(`most likely: ${c.top.map(([t, p]) => `${t} (${percent(p)})`).join(', ')}`);
  }
  const guess = view.guesses[i];
  if (guess != null && known < l) lines.push(`current guess: ${guess}`);
  return lines.join('\n');
}

function tooltipFor(panel, i) {
  const view = panel.viewAt(shown);
  if (view && panel.isImage) return pixelTooltip(panel, view, i);
  const cell = view && panel.cells(view)[i];
  if (!cell) return null;
  const { subtokens: l, vocab_size: v } = panel.info.model;
  const lines = [`position ${i} · ${cell.known} of ${l} digits revealed`];
  if (cell.token != null) lines.push(`token ${cell.token} “${visible(cell.label)}”${cell.fixed ? ' (given)' : ''}`);
  else if (cell.known === 0) lines.push(`all ${v} tokens still possible`);
  if (cell.consistent) {
    lines.push(`${cell.consistent.count} tokens consistent with the revealed digits; most likely:`);
    for (const c of cell.consistent.top) lines.push(`  “${visible(c.text)}” (${c.token})  ${percent(c.p)}`);
  }
  if (cell.guess != null) lines.push(`current guess: “${visible(cell.label)}” (${cell.guess})`);
  return lines.join('\n');
}

// Shows the hovered cell's tooltip, rebuilt from the step on display (cells are redrawn).
function updateTooltip() {
  const tip = $('tooltip');
  const text = hovered ? tooltipFor(hovered.panel, hovered.index) : null;
  tip.hidden = !text;
  if (!text) return;
  tip.textContent = text;
  if (!hovered.panel.grid.geometry) return;
  const r = hovered.panel.grid.rectOf(hovered.index);
  tip.style.left = `${r.left + window.scrollX}px`;
  tip.style.top = `${r.bottom + window.scrollY + 4}px`;
}

// What a model folder's training.json says of its training, in one line (null without one).
function describeTraining(t) {
  if (!t || typeof t !== 'object') return null;
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
  return parts.length ? `How it was trained: ${parts.join(' ')}` : null;
}

// A byte count with its unit: 950 B, 12.3 kB, 1.22 MB.
function byteSize(n) {
  if (n < 1e3) return `${n.toFixed(0)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  return `${(n / 1e6).toFixed(2)} MB`;
}

function refresh() {
  // The legend explains the marks of the mode on show.
  document.body.dataset.kind = panels.length && panels.every((p) => p.isImage) ? 'image' : 'text';
  const longest = Math.max(0, ...panels.map((p) => p.steps.length));
  const timeline = $('timeline');
  timeline.max = Math.max(0, longest - 1);
  timeline.disabled = longest === 0;
  if (shown == null) timeline.value = timeline.max;
  const index = shown ?? null;
  // Each panel's own step is in its stats line; the shared timeline says where it stands.
  setText($('timeline-label'), !longest ? '–' : shown == null ? 'live (newest step)' : `${shown} of ${longest - 1}`);
  for (const p of panels) {
    if (!p.info) continue;
    p.render(index);
    if (p.phase !== 'running') p.grid.paintRestWhenIdle();
  }
  updateTooltip();

  const phases = panels.map((p) => p.phase);
  const busy = phases.some((s) => s === 'running');
  const paused = phases.some((s) => s === 'paused');
  const ready = panels.length && phases.every((s) => ['ready', 'done', 'paused', 'running', 'failed'].includes(s)) &&
    phases.some((s) => s !== 'failed');
  $('start').disabled = !ready || busy;
  $('pause').disabled = !(busy || paused);
  $('pause').textContent = paused && !busy ? 'Resume' : 'Pause';
  $('step').disabled = !paused || busy;
  $('abort').disabled = !(busy || paused);
  $('export').disabled = !panels.some((p) => p.steps.length);
  document.body.classList.toggle('has-image', panels.some((p) => p.isImage));
  document.body.classList.toggle('has-text', panels.some((p) => !p.isImage));
  $('take-sample').disabled = busy || !sampled();
  $('clear-erase').disabled = !inpaint.erased?.some((e) => e);
  $('inpaint').disabled = !ready || busy || !inpaint.levels;
  document.body.dataset.phase = busy ? 'running' : paused ? 'paused' : phases.includes('loading') ? 'loading' : 'idle';
  const failed = panels.filter((p) => !p.q('.error').hidden);
  if (failed.length) setStatus(`${failed.map((p) => p.spec.name).join(', ')}: see the message in the panel`, 'bad');
  else if (phases.includes('loading')) setStatus('loading models…');
  else setStatus(busy ? 'generating…' : panels.some((p) => p.phase === 'done') ? 'done' : 'ready');
}

// The request of the controls: a text model gets the prompt and suffix, an image model the
// pinned pixels (inpainting) instead.
function request(image, pins = []) {
  const num = (id) => Number($(id).value);
  const topK = num('top_k');
  return {
    prompt: image ? [] : $('prompt').value,
    suffix: image ? [] : $('suffix').value,
    pins: image ? pins : [],
    settings: {
      steps: num('steps'),
      seed: num('seed'),
      temperature: num('temperature'),
      top_p: num('top_p'),
      top_k: topK > 0 ? topK : null,
      mode: $('mode').value,
    },
    executor: $('executor').value,
  };
}

// Downloads each panel's trajectory (JSON Lines, the format `prime generate --trajectory`
// writes and the page opens).
function exportTrajectories() {
  const exported = {};
  panels.filter((p) => p.steps.length && p.header).forEach((p, i) => {
    const text = p.trajectory();
    exported[p.spec.name] = text;
    const a = Object.assign(document.createElement('a'), {
      href: URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' })),
      download: `prime-trajectory-${i + 1}.jsonl`,
    });
    a.click();
    URL.revokeObjectURL(a.href);
  });
  window.primeExport = exported; // for scripted checks of what the button downloads
}

// A recorded trajectory played through the worker protocol: the panel and the controls work
// on it as on a live run.
class Replayer {
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

  emitStep() {
    const { steps, ending } = this.t;
    const record = { ...steps[this.next] };
    this.next += 1;
    if (this.next === steps.length) record.ending = ending;
    this.emit('step', { view: record, ms: 0 });
    if (this.next === steps.length) {
      this.running = false;
      this.emit('done');
    }
  }

  async loop() {
    const id = ++this.loopId;
    while (id === this.loopId && this.running && this.next < this.t.steps.length) {
      this.emitStep();
      await new Promise((r) => setTimeout(r, this.delayMs));
    }
  }

  postMessage(msg) {
    const { header } = this.t;
    switch (msg.type) {
      case 'load':
        this.emit('ready', { info: { model: header.model, device: { replay: header.device, executor: header.executor } } });
        break;
      case 'start':
        this.next = 0;
        this.delayMs = msg.delayMs ?? 0;
        this.running = true;
        this.emit('started', { header });
        this.loop();
        break;
      case 'pause':
        this.running = false;
        this.emit('paused');
        break;
      case 'resume':
        if (!this.running && this.next < this.t.steps.length) {
          this.running = true;
          this.loop();
        }
        break;
      case 'step':
        if (!this.running && this.next < this.t.steps.length) {
          this.emitStep();
          this.emit('paused');
        }
        break;
      case 'abort':
        this.running = false;
        this.emit('aborted');
        break;
      case 'speed':
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

// Parses a trajectory file (JSON Lines); throws a readable error on anything else.
function parseTrajectory(text, name) {
  const lines = text.split('\n').filter((l) => l.trim());
  const parse = (line, n) => {
    try {
      return JSON.parse(line);
    } catch (e) {
      throw new Error(`${name}: line ${n} is not JSON (${e.message})`);
    }
  };
  const header = parse(lines[0] ?? '', 1);
  if (header.format !== 'prime-trajectory' || header.version !== 1) {
    throw new Error(`${name} is not a prime-trajectory version 1 file`);
  }
  if (lines.length < 3) throw new Error(`${name}: no steps`);
  const steps = lines.slice(1, -1).map((l, n) => parse(l, n + 2));
  const ending = parse(lines[lines.length - 1], lines.length);
  if (!ending.outcome) throw new Error(`${name}: the last line is not the ending`);
  // The records must fit the header's model before anything is drawn from them.
  const { model, request } = header;
  const positive = (x) => Number.isInteger(x) && x > 0;
  if (!model || !positive(model.subtokens) || !positive(model.length) || !Number.isInteger(model.mask_id)
      || !request?.settings) {
    throw new Error(`${name}: the header lacks the model's shape (subtokens, length, mask_id) or the request`);
  }
  const digits = model.subtokens * model.length;
  steps.forEach((s, i) => {
    const arrays = ['state', 'guesses', 'revealed', 'candidates'].every((k) => Array.isArray(s[k]));
    const pixels = !model.image || (Array.isArray(s.pixels) && s.pixels.length === model.length);
    if (!arrays || !pixels || s.state.length !== digits || s.guesses.length !== model.length || !Array.isArray(s.labels ?? [])) {
      throw new Error(`${name}: the record on line ${i + 2} does not fit the header's model ` +
        `(${digits} digit slots and ${model.length} guesses${model.image ? ' and pixels' : ''} per step)`);
    }
  });
  return { header, steps, ending };
}

// Ends every panel's worker and removes the panels, before something else takes their place.
function clearPanels() {
  for (const p of panels.splice(0)) p.worker.terminate();
  $('panels').replaceChildren();
  hovered = null;
  shown = null;
}

// Opens a model folder from local files (config.json, model.safetensors, optional
// tokenizer.json — e.g. written by `prime convert`) in place of the current panels: no server
// is involved, the worker reads the files.
function openModel(fileList) {
  const byName = new Map([...fileList].map((f) => [f.name, f]));
  const files = {
    'config.json': byName.get('config.json'),
    'model.safetensors': byName.get('model.safetensors'),
    'tokenizer.json': byName.get('tokenizer.json'),
  };
  const missing = ['config.json', 'model.safetensors'].filter((n) => !files[n]);
  if (missing.length) {
    setStatus(`a model folder needs config.json and model.safetensors; missing: ${missing.join(', ')}`, 'bad');
    return;
  }
  const first = fileList[0];
  const folder = first.webkitRelativePath ? first.webkitRelativePath.split('/')[0] : 'local model';
  clearPanels();
  setStatus(`opening ${folder} from local files`);
  panels.push(new Panel({ name: `${folder} (local)`, path: folder, files }));
  refresh();
}

// Opens a trajectory file in place of the live models and replays it.
async function openTrajectory(file) {
  try {
    const trajectory = parseTrajectory(await file.text(), file.name);
    clearPanels();
    const { request } = trajectory.header;
    if (typeof request.prompt === 'string') $('prompt').value = request.prompt;
    $('steps').value = request.settings.steps;
    $('seed').value = request.settings.seed;
    const panel = new Panel({ name: `${file.name} (replay)`, path: file.name, trajectory });
    panels.push(panel);
    const started = () => (panel.phase === 'ready' ? panel.start(request, Number($('speed').value)) : setTimeout(started, 10));
    started();
    refresh();
  } catch (e) {
    setStatus(e.message, 'bad');
  }
}

// Inpainting: a source picture (a generated sample, or any picture the user opens, scaled to
// the model's grid in grey), rectangles the user erases on it by dragging, and a run of every
// image panel with the other pixels pinned (the sampler's pins: they are known from the first
// step and never change).
const inpaint = { shape: null, levels: null, erased: null, drag: null };

// The first image panel's finished sample and its grid, if any.
function sampled() {
  const p = panels.find((q) => q.isImage && q.steps[q.steps.length - 1]?.ending);
  return p && { tokens: p.steps[p.steps.length - 1].ending.outcome.tokens, shape: p.info.model.image };
}

function setSource(levels, shape) {
  Object.assign(inpaint, { shape, levels: Uint8Array.from(levels), erased: new Uint8Array(levels.length), drag: null });
  drawSource();
  refresh();
}

// The pixel of the source under a point (client coordinates), clamped to the grid.
function sourcePixel(e) {
  const r = $('source').getBoundingClientRect();
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, Math.floor(v / PIXEL.scale)));
  return [clamp(e.clientX - r.left, inpaint.shape.width), clamp(e.clientY - r.top, inpaint.shape.height)];
}

// Whether pixel i lies in the rectangle being dragged.
function inDrag(i) {
  const d = inpaint.drag;
  if (!d) return false;
  const [x, y] = [i % inpaint.shape.width, Math.floor(i / inpaint.shape.width)];
  return x >= Math.min(d.from[0], d.to[0]) && x <= Math.max(d.from[0], d.to[0])
    && y >= Math.min(d.from[1], d.to[1]) && y <= Math.max(d.from[1], d.to[1]);
}

// The source with its erased pixels (and the rectangle being dragged) drawn masked.
function drawSource() {
  const canvas = $('source');
  const g = canvas.getContext('2d', { alpha: false });
  if (!inpaint.levels) return;
  sizePixelCanvas(canvas, g, inpaint.shape, PIXEL.scale);
  const pixels = [...inpaint.levels].map((v, i) => (inpaint.erased[i] || inDrag(i) ? null : v));
  paintPixels(g, pixels, inpaint.shape.width, PIXEL.scale);
}

// A picture file in grey at the image panels' grid (the browser scales it).
async function openPicture(file) {
  const p = panels.find((q) => q.isImage && q.info);
  if (!p) throw new Error('load an image model first');
  const { width, height } = p.info.model.image;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (e) {
    throw new Error(`${file.name} is not a picture this browser can decode`);
  }
  const canvas = Object.assign(document.createElement('canvas'), { width, height });
  const g = canvas.getContext('2d');
  g.drawImage(bitmap, 0, 0, width, height);
  const rgba = g.getImageData(0, 0, width, height).data;
  const levels = [];
  for (let i = 0; i < width * height; i += 1) {
    levels.push(Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]));
  }
  setSource(levels, { width, height });
}

// Starts every image panel with the source's pixels outside the erased region pinned.
function startInpainting() {
  const { levels, erased, shape } = inpaint;
  const pins = [];
  levels.forEach((v, i) => {
    if (!erased[i]) pins.push([i, v]);
  });
  if (pins.length === levels.length) {
    setStatus('erase a region of the picture first (drag over it)', 'bad');
    return;
  }
  const targets = panels.filter((p) => p.info && p.isImage);
  const misfit = targets.filter((p) => p.info.model.image.width !== shape.width || p.info.model.image.height !== shape.height);
  if (misfit.length) {
    setStatus(`${misfit.map((p) => p.spec.name).join(', ')}: the picture is ${shape.width} × ${shape.height}, not the model's grid`, 'bad');
    return;
  }
  shown = null;
  for (const p of targets) p.start(request(true, pins), Number($('speed').value));
}

function wireInpainting() {
  const failed = (e) => setStatus(e.message, 'bad');
  $('take-sample').addEventListener('click', () => {
    const s = sampled();
    if (s) setSource(s.tokens, s.shape);
  });
  $('open-image').addEventListener('change', (e) => {
    if (e.target.files[0]) openPicture(e.target.files[0]).catch(failed);
    e.target.value = '';
  });
  $('clear-erase').addEventListener('click', () => {
    inpaint.erased?.fill(0);
    drawSource();
    refresh();
  });
  $('inpaint').addEventListener('click', startInpainting);
  $('source').addEventListener('mousedown', (e) => {
    if (!inpaint.levels) return;
    const at = sourcePixel(e);
    inpaint.drag = { from: at, to: at };
    drawSource();
  });
  $('source').addEventListener('mousemove', (e) => {
    if (!inpaint.drag) return;
    inpaint.drag.to = sourcePixel(e);
    drawSource();
  });
  window.addEventListener('mouseup', (e) => {
    if (!inpaint.drag) return;
    inpaint.drag.to = sourcePixel(e); // released outside the picture: its nearest pixel
    inpaint.erased.forEach((_, i) => {
      if (inDrag(i)) inpaint.erased[i] = 1;
    });
    inpaint.drag = null;
    drawSource();
    refresh();
  });
}

// Shows the models of one models.json group (text or image) in place of the current panels.
function showKind(k) {
  const specs = allSpecs.filter((s) => (s.kind ?? 'text') === k);
  if (!specs.length) {
    setStatus(`models.json lists no ${JSON.stringify(k)} models`, 'bad');
    return;
  }
  clearPanels();
  $('kind').value = k;
  for (const spec of specs) panels.push(new Panel(spec));
  refresh();
}

function wire() {
  $('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    shown = null;
    for (const p of panels) if (p.info) p.start(request(p.isImage), Number($('speed').value));
  });
  $('kind').addEventListener('change', () => showKind($('kind').value));
  wireInpainting();
  $('pause').addEventListener('click', () => {
    const paused = panels.some((p) => p.phase === 'paused') && !panels.some((p) => p.phase === 'running');
    for (const p of panels) p.worker.postMessage({ type: paused ? 'resume' : 'pause' });
    if (paused) for (const p of panels) if (p.phase === 'paused') p.phase = 'running';
    refresh();
  });
  $('step').addEventListener('click', () => panels.forEach((p) => p.worker.postMessage({ type: 'step' })));
  $('abort').addEventListener('click', () => panels.forEach((p) => p.worker.postMessage({ type: 'abort' })));
  $('export').addEventListener('click', exportTrajectories);
  $('open').addEventListener('change', (e) => {
    if (e.target.files[0]) openTrajectory(e.target.files[0]);
    e.target.value = '';
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  $('open-model').addEventListener('change', (e) => {
    if (e.target.files.length) openModel(e.target.files);
    e.target.value = '';
  });
  // A drop with a config.json is a model folder's files; otherwise a trajectory.
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    const files = e.dataTransfer?.files ?? [];
    if ([...files].some((f) => f.name === 'config.json')) openModel(files);
    else if (files[0]) openTrajectory(files[0]);
  });
  const showSpeed = () => setText($('speed-value'), `${$('speed').value} ms between steps`);
  showSpeed();
  $('speed').addEventListener('input', () => {
    showSpeed();
    panels.forEach((p) => p.worker.postMessage({ type: 'speed', delayMs: Number($('speed').value) }));
  });
  $('clear-cache').addEventListener('click', async () => {
    await caches.delete('prime-models-v1').catch(() => {});
    setStatus('model cache cleared; reload to download again');
  });
  window.addEventListener('resize', refresh);
  window.addEventListener('beforeprint', () => panels.forEach((p) => p.grid.paintAll()));
  window.addEventListener('scroll', () => panels.forEach((p) => p.grid.paintVisible()), { passive: true });
  $('timeline').addEventListener('input', () => {
    const t = $('timeline');
    shown = Number(t.value) >= Number(t.max) ? null : Number(t.value);
    refresh();
  });
  $('panels').addEventListener('mousemove', (e) => {
    const panel = e.target.matches('canvas.cells') && panels.find((p) => p.grid.canvas === e.target);
    const index = panel ? panel.grid.indexAt(e.clientX, e.clientY) : null;
    const next = index == null ? null : { panel, index };
    if (next?.panel === hovered?.panel && next?.index === hovered?.index) return;
    hovered = next;
    updateTooltip();
  });
  $('panels').addEventListener('mouseleave', () => {
    hovered = null;
    updateTooltip();
  });
}

async function main() {
  wire();
  if (maxBinding !== undefined && !(Number.isInteger(maxBinding) && maxBinding > 0 && maxBinding < 2 ** 32)) {
    setStatus(`?binding= must be a number of bytes below 4 GiB, not ${JSON.stringify(params.get('binding'))}`, 'bad');
    return;
  }
  let specs;
  if (params.get('models')) {
    specs = params.get('models').split(',').map((path) => ({ name: path.replace(/\/$/, '').split('/').pop(), path }));
  } else {
    try {
      const response = await fetch('models.json');
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      specs = await response.json();
    } catch (e) {
      setStatus(`cannot read models.json: ${e.message}`, 'bad');
      return;
    }
  }
  if (!navigator.gpu && backend !== 'cpu') setStatus('this browser has no WebGPU: the models run on the CPU');
  allSpecs = specs;
  if (new Set(specs.map((s) => s.kind ?? 'text')).size > 1) $('kind-box').hidden = false;
  if (params.get('models')) {
    for (const spec of specs) panels.push(new Panel(spec));
    refresh();
  } else {
    showKind(params.get('kind') ?? 'text');
  }
}

// For scripted checks: the panels, their recorded steps, the timeline position, opening a
// trajectory or a model folder as the file pickers do, and the inpainting source.
window.prime = { panels, show: (i) => { shown = i; refresh(); }, open: openTrajectory, openModel, inpaint };
main();
