import { emptyCanvas } from './util.js';

// An image model's step on a canvas: each pixel a square, drawn from the record's `pixels`
// (prime-core's image::Pixel, as the CLI's PNG and GIF draw them): masked blue, known at its
// grey level, partly revealed at the mean of the levels it can still become with an orange dot.
export const PIXEL = { scale: 16, mask: '#3b5bdb', marker: '#ff8c00' };

// Paints `pixels` (null: masked, a number: a level, an object: partly revealed) of a
// width-wide image onto `g` at `scale` CSS pixels per pixel.
export function paintPixels(g, pixels, width, scale) {
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
export function sizePixelCanvas(canvas, g, { width, height }, scale) {
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

export class PixelGrid {
  constructor(canvas, shape) {
    this.canvas = canvas;
    this.shape = shape;
    this.g = canvas.getContext('2d', { alpha: false });
    this.pixels = []; // what the last step drawn holds, for the tooltip and for scripted checks
    this.geometry = null;
  }

  clear() {
    this.pixels = [];
    emptyCanvas(this.canvas);
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
