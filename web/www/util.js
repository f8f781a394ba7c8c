// Small helpers the page's modules share: element lookup, the URL's options, text and numbers
// as the page shows them, the status line.

export const $ = (id) => document.getElementById(id);
export const params = new URLSearchParams(location.search);
export const backend = params.get('backend') ?? 'auto';
// ?binding=BYTES caps each GPU buffer below the adapter's limit (tensors are cut to fit).
export const maxBinding = params.get('binding') ? Number(params.get('binding')) : undefined;

// Writes an element's text only when it changes (an equal write still invalidates layout).
export const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};
export const visible = (text) => (text ?? '').replace(/\n/g, '⏎');
export const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)}%`;

export function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').className = kind;
}


// A byte count with its unit: 950 B, 12.3 kB, 1.22 MB.
export function byteSize(n) {
  if (n < 1e3) return `${n.toFixed(0)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  return `${(n / 1e6).toFixed(2)} MB`;
}

// Empties a canvas (no pixels, no height), as a panel without a step shows it.
export function emptyCanvas(canvas) {
  canvas.width = 0;
  canvas.height = 0;
  canvas.style.height = '0';
}
