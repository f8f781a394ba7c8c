import { emptyCanvas, visible } from './util.js';

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

export class CellGrid {
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
    emptyCanvas(this.canvas);
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
