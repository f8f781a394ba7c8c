// The page: one panel (and one Web Worker) per model; it renders the trajectory records the
// workers post (the `prime-trajectory` format of prime-core, also written by `prime generate
// --trajectory`) and never samples anything itself. An opened trajectory file replays through
// the same panel and controls, with a Replayer in place of the worker; a `prime serve` run
// streams through a ServerWatcher. The modules: panel.js (a model's panel), cells.js and
// pixels.js (drawing a step), tooltip.js, replay.js, watch.js, inpainting.js, protocol.js (the
// worker messages), state.js and util.js.

import { inpaint, sampled, wireInpainting } from './inpainting.js';
import { Panel } from './panel.js';
import { MODEL_CACHE, ToWorker } from './protocol.js';
import { readTrajectory } from './replay.js';
import { page } from './state.js';
import { updateTooltip } from './tooltip.js';
import { $, backend, maxBinding, params, setStatus, setText } from './util.js';

function refresh() {
  // The legend explains the marks of the mode on show.
  document.body.dataset.kind = page.panels.length && page.panels.every((p) => p.isImage) ? 'image' : 'text';
  const longest = Math.max(0, ...page.panels.map((p) => p.steps.length));
  const timeline = $('timeline');
  timeline.max = Math.max(0, longest - 1);
  timeline.disabled = longest === 0;
  if (page.shown == null) timeline.value = timeline.max;
  const index = page.shown ?? null;
  // Each panel's own step is in its stats line; the shared timeline says where it stands.
  setText($('timeline-label'), !longest ? '–' : page.shown == null ? 'live (newest step)' : `${page.shown} of ${longest - 1}`);
  showRecommended();
  for (const p of page.panels) {
    if (!p.info) continue;
    p.render(index);
    if (p.phase !== 'running') p.grid.paintRestWhenIdle();
  }
  updateTooltip();

  const phases = page.panels.map((p) => p.phase);
  const busy = phases.some((s) => s === 'running');
  const paused = phases.some((s) => s === 'paused');
  const ready = page.panels.length && phases.every((s) => ['ready', 'done', 'paused', 'running', 'failed'].includes(s)) &&
    phases.some((s) => s !== 'failed');
  $('start').disabled = !ready || busy;
  $('pause').disabled = !(busy || paused);
  $('pause').textContent = paused && !busy ? 'Resume' : 'Pause';
  $('step').disabled = !paused || busy;
  $('abort').disabled = !(busy || paused);
  $('export').disabled = !page.panels.some((p) => p.steps.length);
  document.body.classList.toggle('has-image', page.panels.some((p) => p.isImage));
  document.body.classList.toggle('has-text', page.panels.some((p) => !p.isImage));
  showClasses();
  $('take-sample').disabled = busy || !sampled();
  $('clear-erase').disabled = !inpaint.erased?.some((e) => e);
  $('inpaint').disabled = !ready || busy || !inpaint.levels;
  document.body.dataset.phase = busy ? 'running' : paused ? 'paused' : phases.includes('loading') ? 'loading' : 'idle';
  const failed = page.panels.filter((p) => !p.q('.error').hidden);
  if (failed.length) setStatus(`${failed.map((p) => p.spec.name).join(', ')}: see the message in the panel`, 'bad');
  else if (phases.includes('loading')) setStatus('loading models…');
  else if (busy) setStatus('generating…');
  else if (page.panels.some((p) => p.phase === 'done')) setStatus('done');
  // Until something has run, say what to do.
  else setStatus(page.panels.some((p) => p.steps.length) ? 'ready' : 'ready: press Start to generate');
}

// The classes of the loaded class-conditioned models, offered by name in the class control
// (once: the models of a page share their classes).
function showClasses() {
  const classes = page.panels.find((p) => p.info?.model.classes?.length)?.info.model.classes ?? [];
  document.body.classList.toggle('has-classes', classes.length > 0);
  const select = $('class');
  if (select.options.length !== 2 + classes.length) {
    const keep = select.value;
    select.replaceChildren(...[...select.options].slice(0, 2), ...classes.map((name) => new Option(name, name)));
    select.value = [...select.options].some((o) => o.value === keep) ? keep : 'each';
  }
}

// The request of the controls for `panel`: a text model gets the prompt and suffix, an image
// model the pinned pixels (inpainting) instead, a class-conditioned model the class and the
// guidance. An empty temperature, top-p, top-k or guidance is left out, so each model gets
// its own recommendation (the engine fills it in; the header records it).
function request(panel, pins = []) {
  const image = panel.isImage;
  const conditioned = Boolean(panel.info?.model.classes?.length);
  const num = (id) => Number($(id).value);
  const given = (id) => ($(id).value === '' ? undefined : num(id));
  const topK = given('top_k');
  const policy = $('policy').value;
  return {
    class: conditioned && $('class').value !== 'none' ? $('class').value : undefined,
    prompt: image ? [] : $('prompt').value,
    suffix: image ? [] : $('suffix').value,
    pins: image ? pins : [],
    settings: {
      steps: num('steps'),
      seed: num('seed'),
      temperature: given('temperature'),
      top_p: given('top_p'),
      top_k: topK === undefined ? undefined : topK > 0 ? topK : null,
      // The mode draws the schedule's times; an adaptive policy has none.
      mode: policy === 'schedule' ? $('mode').value : 'ancestral',
      policy: policy === 'schedule' ? policy : { [policy]: { [policy === 'confidence' ? 'threshold' : 'budget']: num('policy_value') } },
      guidance: conditioned ? given('guidance') : undefined,
    },
    executor: $('executor').value,
  };
}

// The empty sampling inputs show what the loaded models recommend (their config.json's
// `sampling`), else the official default; "0.9 / 1" when the panels' models differ.
function showRecommended() {
  const loaded = page.panels.filter((p) => p.info);
  if (!loaded.length) return;
  for (const [id, official] of [['temperature', 1], ['top_p', 1], ['top_k', 'off'], ['guidance', 0]]) {
    const values = loaded.map((p) => p.info.model.sampling?.[id] ?? official);
    $(id).placeholder = [...new Set(values)].join(' / ');
  }
}

// Downloads each panel's trajectory (JSON Lines, the format `prime generate --trajectory`
// writes and the page opens).
function exportTrajectories() {
  const exported = {};
  page.panels.filter((p) => p.steps.length && p.header).forEach((p, i) => {
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

// Ends every panel's worker and removes the panels, before something else takes their place.
function clearPanels() {
  for (const p of page.panels.splice(0)) p.worker.terminate();
  $('panels').replaceChildren();
  page.hovered = null;
  page.shown = null;
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
  page.panels.push(new Panel({ name: `${folder} (local)`, path: folder, files }, refresh));
  refresh();
}

// Opens a trajectory file in place of the live models and replays it.
async function openTrajectory(file) {
  try {
    let trajectory;
    try {
      trajectory = await readTrajectory(await file.text());
    } catch (e) {
      throw new Error(`${file.name}: ${e.message}`);
    }
    clearPanels();
    const { request } = trajectory.header;
    if (typeof request.prompt === 'string') $('prompt').value = request.prompt;
    $('steps').value = request.settings.steps;
    $('seed').value = request.settings.seed;
    const panel = new Panel({ name: `${file.name} (replay)`, path: file.name, trajectory }, refresh);
    page.panels.push(panel);
    const started = () => (panel.phase === 'ready' ? panel.start(request, Number($('speed').value)) : setTimeout(started, 10));
    started();
    refresh();
  } catch (e) {
    setStatus(e.message, 'bad');
  }
}

// Watches a `prime serve` at `url` in place of the current panels: the controls' request runs
// on the server, and its steps are drawn as they stream in.
function watchServer(url) {
  let parsed;
  try {
    parsed = new URL(url);
    if (!['http:', 'https:'].includes(parsed.protocol)) throw new Error('not http');
  } catch {
    setStatus(`${JSON.stringify(url)} is not a server address like http://127.0.0.1:8081`, 'bad');
    return;
  }
  const address = parsed.origin;
  clearPanels();
  $('server-url').value = address;
  page.panels.push(new Panel({ name: `prime serve at ${address}`, path: address, server: address }, refresh));
  refresh();
}

// Shows the models of one models.json group (text or image) in place of the current panels.
function showKind(k) {
  const specs = page.allSpecs.filter((s) => (s.kind ?? 'text') === k);
  if (!specs.length) {
    setStatus(`models.json lists no ${JSON.stringify(k)} models`, 'bad');
    return;
  }
  clearPanels();
  $('kind').value = k;
  for (const spec of specs) page.panels.push(new Panel(spec, refresh));
  refresh();
}

function wire() {
  $('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    page.shown = null;
    for (const p of page.panels) if (p.info) p.start(request(p), Number($('speed').value));
  });
  $('kind').addEventListener('change', () => showKind($('kind').value));
  wireInpainting(refresh, request);
  $('pause').addEventListener('click', () => {
    const paused = page.panels.some((p) => p.phase === 'paused') && !page.panels.some((p) => p.phase === 'running');
    for (const p of page.panels) p.worker.postMessage({ type: paused ? ToWorker.RESUME : ToWorker.PAUSE });
    if (paused) for (const p of page.panels) if (p.phase === 'paused') p.phase = 'running';
    refresh();
  });
  $('step').addEventListener('click', () => page.panels.forEach((p) => p.worker.postMessage({ type: ToWorker.STEP })));
  $('abort').addEventListener('click', () => page.panels.forEach((p) => p.worker.postMessage({ type: ToWorker.ABORT })));
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
    page.panels.forEach((p) => p.worker.postMessage({ type: ToWorker.SPEED, delayMs: Number($('speed').value) }));
  });
  $('watch').addEventListener('click', () => watchServer($('server-url').value.trim() || $('server-url').placeholder));
  $('clear-cache').addEventListener('click', async () => {
    await caches.delete(MODEL_CACHE).catch(() => {});
    setStatus('model cache cleared; reload to download again');
  });
  window.addEventListener('resize', refresh);
  window.addEventListener('beforeprint', () => page.panels.forEach((p) => p.grid.paintAll()));
  window.addEventListener('scroll', () => page.panels.forEach((p) => p.grid.paintVisible()), { passive: true });
  $('timeline').addEventListener('input', () => {
    const t = $('timeline');
    page.shown = Number(t.value) >= Number(t.max) ? null : Number(t.value);
    refresh();
  });
  $('panels').addEventListener('mousemove', (e) => {
    const panel = e.target.matches('canvas.cells') && page.panels.find((p) => p.grid.canvas === e.target);
    const index = panel ? panel.grid.indexAt(e.clientX, e.clientY) : null;
    const next = index == null ? null : { panel, index };
    if (next?.panel === page.hovered?.panel && next?.index === page.hovered?.index) return;
    page.hovered = next;
    updateTooltip();
  });
  $('panels').addEventListener('mouseleave', () => {
    page.hovered = null;
    updateTooltip();
  });
}

async function main() {
  wire();
  if (maxBinding !== undefined && !(Number.isInteger(maxBinding) && maxBinding > 0 && maxBinding < 2 ** 32)) {
    setStatus(`?binding= must be a number of bytes below 4 GiB, not ${JSON.stringify(params.get('binding'))}`, 'bad');
    return;
  }
  if (params.get('server')) {
    watchServer(params.get('server'));
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
  page.allSpecs = specs;
  if (new Set(specs.map((s) => s.kind ?? 'text')).size > 1) $('kind-box').hidden = false;
  if (params.get('models')) {
    for (const spec of specs) page.panels.push(new Panel(spec, refresh));
    refresh();
  } else {
    showKind(params.get('kind') ?? 'text');
  }
}

// For scripted checks: the panels, their recorded steps, the timeline position, opening a
// trajectory or a model folder as the file pickers do, and the inpainting source.
window.prime = { panels: page.panels, show: (i) => { page.shown = i; refresh(); }, open: openTrajectory, openModel, watchServer, inpaint };
main();
