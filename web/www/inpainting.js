// Inpainting: a source picture, the rectangles erased on it, and a run with the rest pinned.

import { page } from './state.js';
import { PIXEL, paintPixels, sizePixelCanvas } from './pixels.js';
import { $, setStatus } from './util.js';

// Inpainting: a source picture (a generated sample, or any picture the user opens, scaled to
// the model's grid in grey), rectangles the user erases on it by dragging, and a run of every
// image panel with the other pixels pinned (the sampler's pins: they are known from the first
// step and never change).
export const inpaint = { shape: null, levels: null, erased: null, drag: null };
// What the page lends this module: its redraw, and the request of its controls.
const hooks = { refresh: () => {}, request: null };

// The first image panel's finished sample and its grid, if any.
export function sampled() {
  const p = page.panels.find((q) => q.isImage && q.steps[q.steps.length - 1]?.ending);
  return p && { tokens: p.steps[p.steps.length - 1].ending.outcome.tokens, shape: p.info.model.image };
}

function setSource(levels, shape) {
  Object.assign(inpaint, { shape, levels: Uint8Array.from(levels), erased: new Uint8Array(levels.length), drag: null });
  drawSource();
  hooks.refresh();
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
  const p = page.panels.find((q) => q.isImage && q.info);
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
  const targets = page.panels.filter((p) => p.info && p.isImage);
  const misfit = targets.filter((p) => p.info.model.image.width !== shape.width || p.info.model.image.height !== shape.height);
  if (misfit.length) {
    setStatus(`${misfit.map((p) => p.spec.name).join(', ')}: the picture is ${shape.width} × ${shape.height}, not the model's grid`, 'bad');
    return;
  }
  page.shown = null;
  for (const p of targets) p.start(hooks.request(p, pins), Number($('speed').value));
}

// Wires the inpainting controls; `refresh` redraws the page, `request(panel, pins)` is the
// request of the controls for a panel.
export function wireInpainting(refresh, request) {
  Object.assign(hooks, { refresh, request });
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
    hooks.refresh();
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
    hooks.refresh();
  });
}
