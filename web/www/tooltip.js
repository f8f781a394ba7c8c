// The tooltip of the hovered cell or pixel.

import { page } from './state.js';
import { $, percent, visible } from './util.js';

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
  const reason = revealReason(panel, view, i);
  if (reason) lines.push(reason);
  return lines.join('\n');
}

// Why position i's digits were revealed at the shown step, under an adaptive policy: the
// score the record gives each revealed slot.
function revealReason(panel, view, i) {
  const l = panel.info.model.subtokens;
  const policy = panel.header?.request.settings.policy;
  if (!view.scores?.length || typeof policy !== 'object') return null;
  const what = 'confidence' in policy ? 'confidence' : 'entropy';
  const here = view.revealed.map((slot, k) => [slot, view.scores[k]]).filter(([slot]) => Math.floor(slot / l) === i);
  if (!here.length) return null;
  return `revealed at this step: ${here.map(([slot, s]) => `digit ${slot % l} (${what} ${what === 'confidence' ? percent(s) : `${s.toFixed(2)} nats`})`).join(', ')}`;
}

function tooltipFor(panel, i) {
  const view = panel.viewAt(page.shown);
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
  const reason = revealReason(panel, view, i);
  if (reason) lines.push(reason);
  return lines.join('\n');
}

// Shows the hovered cell's tooltip, rebuilt from the step on display (cells are redrawn).
export function updateTooltip() {
  const tip = $('tooltip');
  const text = page.hovered ? tooltipFor(page.hovered.panel, page.hovered.index) : null;
  tip.hidden = !text;
  if (!text) return;
  tip.textContent = text;
  if (!page.hovered.panel.grid.geometry) return;
  const r = page.hovered.panel.grid.rectOf(page.hovered.index);
  tip.style.left = `${r.left + window.scrollX}px`;
  tip.style.top = `${r.bottom + window.scrollY + 4}px`;
}
